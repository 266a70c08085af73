#!/usr/bin/env bash
# Sets up (installs, builds) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${FLIGHT_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${FLIGHT_TEST_JOBS:-2}" --timeout 600

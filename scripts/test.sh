#!/usr/bin/env bash
# Sets up (installs, builds) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${FLIGHT_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${FLIGHT_TEST_JOBS:-2}" --timeout 600
cd - >/dev/null
# Every libFuzzer target for a short while (issue 15); FLIGHT_FUZZ_SECONDS=20 runs each for 20 s.
if [ "${FLIGHT_FUZZ_SECONDS:-0}" != "0" ]; then
  scripts/fuzz.sh all "${FLIGHT_FUZZ_SECONDS}"
fi

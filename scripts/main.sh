#!/usr/bin/env bash
# Sets up (installs, builds) and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${FLIGHT_BUILD_DIR:-build}"
"$BUILD_DIR/bin/flight" topo show configs/topologies/3tier.yaml --tree

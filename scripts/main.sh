#!/usr/bin/env bash
# Sets up (installs, builds) and runs the main job: hierarchical FL on
# Fashion-MNIST (coordinator -> 4 aggregators -> 8 workers each, LeNet-5,
# FedAvg, 20 rounds) with the embedded control plane and in-memory data plane.
# Extra arguments go to `flight run` (e.g. --set rounds=5).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${FLIGHT_BUILD_DIR:-build}"
"$BUILD_DIR/bin/flight" run configs/fmnist-3tier.yaml "$@"

#!/usr/bin/env bash
# Kept for old habits: the `processes` launcher does what this script did by hand.
# Usage: scripts/run-local-cluster.sh [CONFIG] [flight run options...]
cd "$(dirname "$0")/.." && exec "${FLIGHT_BIN:-build/bin/flight}" run "${1:-configs/fmnist-distributed.yaml}" --launcher processes "${@:2}"

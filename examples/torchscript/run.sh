#!/usr/bin/env bash
# The TorchScript round trip: export in Python -> train with Flight -> load in Python.
# Usage: examples/torchscript/run.sh [path/to/flight]   (default: build/bin/flight)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
flight="$(realpath "${1:-$here/../../build/bin/flight}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/experiment.yaml" "$work/"
cd "$work"

/usr/bin/python3 "$here/export_model.py" model.pt               # 1. export
"$flight" data show experiment.yaml | tail -n 1                # how the data is split
"$flight" run experiment.yaml                                   # 2. train (federated)
/usr/bin/python3 "$here/evaluate_model.py" model.pt runs/torchscript-example/model.pt  # 3. load back

#!/usr/bin/env bash
# Sets up (installs, builds) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${FLIGHT_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${FLIGHT_TEST_JOBS:-2}" --timeout 600
cd - >/dev/null
# Every libFuzzer target (issue 15), each for FLIGHT_FUZZ_SECONDS (default 20)
# when clang and libFuzzer are installed; FLIGHT_FUZZ_SECONDS=0 skips them. A
# crash, leak or hang fails the run. Their clang + ASan build (build-fuzz/, only
# what the targets link) took ~17 min cold on 2 busy cores for the torch-free
# targets; codec and config add ~16 torch translation units (~20-40 s CPU each).
FUZZ_SECONDS="${FLIGHT_FUZZ_SECONDS:-20}"
if [ "$FUZZ_SECONDS" != "0" ]; then
  if command -v clang++-14 >/dev/null &&
     ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
    scripts/fuzz.sh all "$FUZZ_SECONDS"
  else
    echo "test: fuzz targets skipped (needs clang-14 and libfuzzer-14-dev)"
  fi
fi

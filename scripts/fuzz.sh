#!/usr/bin/env bash
# Builds and runs a libFuzzer target (issue 15) in its own clang build dir.
# Usage: scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]
#        scripts/fuzz.sh all SECONDS        every target, one after the other (what CI runs)
#        scripts/fuzz.sh list               the target names
# TARGET is a name from fuzz/CMakeLists.txt without its fuzz_ prefix
# (topology_yaml, topology_json, config, codec, rest_request, task_message,
# engine_message, state_loader). The checked-in seeds (fuzz/corpus/TARGET) are read, never
# written: new inputs go to $FLIGHT_FUZZ_OUT/TARGET (default build-fuzz/out),
# and so does any crashing input (crash-*, with the libFuzzer log fuzz.log).
# Exits non-zero when a target finds a crash, leak or timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(topology_yaml topology_json task_message state_loader rest_request codec config engine_message)
BUILD_DIR="${FLIGHT_FUZZ_BUILD_DIR:-build-fuzz}"
OUT="${FLIGHT_FUZZ_OUT:-$BUILD_DIR/out}"

if [ "${1:-}" = "list" ]; then printf '%s\n' "${TARGETS[@]}"; exit 0; fi
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target="$1"; seconds="$2"; shift 2

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
  CC="${FLIGHT_FUZZ_CC:-clang-14}" CXX="${FLIGHT_FUZZ_CXX:-clang++-14}" \
    cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFLIGHT_FUZZ=ON -DFLIGHT_BUILD_TESTS=OFF -DFLIGHT_BUILD_PYTHON=OFF
fi

ROOT="$(pwd)"
run_one() {
  local t="$1"; shift
  cmake --build "$BUILD_DIR" -j "${FLIGHT_JOBS:-2}" --target "fuzz_$t"
  local out="$ROOT/$OUT/$t"
  mkdir -p "$out/corpus"
  echo "fuzz: $t for ${seconds}s"
  local rc=0
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
    "$ROOT/$BUILD_DIR/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$out/" "$@" \
    "$out/corpus" "$ROOT/fuzz/corpus/$t" >"$out/fuzz.log" 2>&1 || rc=$?
  grep -E "stat::number_of_executed_units|stat::new_units_added" "$out/fuzz.log" |
    sed "s/^/fuzz: $t /" || true
  if [ $rc -ne 0 ]; then
    tail -n 40 "$out/fuzz.log" >&2
    echo "fuzz: $t FOUND A PROBLEM (exit $rc); see $out/fuzz.log and $out/crash-*" >&2
    return 1
  fi
  return 0
}

status=0
if [ "$target" = "all" ]; then
  # One build for all of them, then the runs.
  cmake --build "$BUILD_DIR" -j "${FLIGHT_JOBS:-2}" --target "${TARGETS[@]/#/fuzz_}"
  for t in "${TARGETS[@]}"; do run_one "$t" "$@" || status=1; done
else
  run_one "$target" "$@" || status=1
fi
exit $status

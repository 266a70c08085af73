#!/usr/bin/env bash
# A distributed deployment on one machine, over loopback: redis-server (data
# plane), `flight serve` (control plane), one `flight endpoint` per endpoint name
# in the experiment's topology, then the coordinator (`flight run`). Everything
# is stopped when the run ends or fails.
#
# Usage: scripts/run-local-cluster.sh [CONFIG] [flight run options...]
#   CONFIG defaults to configs/fmnist-distributed.yaml (REST on 127.0.0.1:8765,
#   redis on 127.0.0.1:6390, token in runs/cluster/token).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${1:-configs/fmnist-distributed.yaml}"
shift || true
BIN="${FLIGHT_BIN:-${FLIGHT_BUILD_DIR:-build}/bin/flight}"
[ -x "$BIN" ] || scripts/setup.sh

SERVICE_PORT="${FLIGHT_SERVICE_PORT:-8765}"
REDIS_PORT="${FLIGHT_REDIS_PORT:-6390}"
WORK=runs/cluster
mkdir -p "$WORK"
[ -s "$WORK/token" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$WORK/token"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() {  # wait_port PORT WHAT
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "run-local-cluster: $2 did not start on port $1 (see $WORK/*.log)" >&2
  exit 1
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --protected-mode no > "$WORK/redis.log" 2>&1 &
pids+=($!)
wait_port "$REDIS_PORT" redis-server

"$BIN" serve --host 127.0.0.1 --port "$SERVICE_PORT" --token-file "$WORK/token" \
  > "$WORK/serve.log" 2>&1 &
pids+=($!)
wait_port "$SERVICE_PORT" "flight serve"

for name in $("$BIN" run "$CONFIG" --list-endpoints); do
  "$BIN" endpoint --service "http://127.0.0.1:$SERVICE_PORT" --token-file "$WORK/token" \
    --name "$name" --threads 1 > "$WORK/endpoint-$name.log" 2>&1 &
  pids+=($!)
done

"$BIN" run "$CONFIG" "$@"

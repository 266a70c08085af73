#!/usr/bin/env bash
# Chaos trials (issue 15): N distributed runs of one small sync job, each with one
# process SIGKILLed at a random moment and restarted; every trial must end with
# the same model.pt (sha256) as the undisturbed run of the same config.
#
#   scripts/chaos.sh N [--seed S] [--kinds coordinator,endpoint,replica] [--keep]
#
# A trial, on loopback in a private temp dir with free ports: a real
# redis-server, two `flight serve` replicas on its state (one leads, one stands
# by), one `flight endpoint` per host of the placement, and the coordinator
# `flight run` (REST control plane, Redis data plane). At a random moment (a
# phase of the run drawn uniformly: up to round 1, round k, after the last round;
# then a delay drawn uniformly within that phase's length in the undisturbed run)
# one process of the chosen kind is SIGKILLed and restarted: the coordinator
# with `flight run CONFIG --resume DIR` (a fresh run into DIR when it died
# before its first checkpoint), an endpoint with the same --name, a replica on
# the same port. A trial survives when the
# coordinator exits 0 within the timeout and no other process died on its own;
# it is identical when model.pt has the undisturbed run's sha256 and rounds.csv
# the same rounds with the same accuracy, losses and counts.
#
# Randomness: trial t draws its kind, victim and moment from bash's RANDOM seeded
# with S+t-1, printed on its line; `scripts/chaos.sh 1 --seed S+t-1 --kinds K`
# replays those inputs (the process's progress at the kill moment is timing and
# varies). --kinds cycles through the list given (the CTest case runs one trial
# per kind); without it each trial picks a kind at random.
#
# Environment: FLIGHT (binary, default build/bin/flight), CHAOS_ROUNDS (5),
# CHAOS_HOSTS (3 endpoints), CHAOS_TIMEOUT_S (per trial, default 10x the
# undisturbed run + 60), TMPDIR. Exit 0 only if every trial survived with an
# identical model. Waits are for files, ports and log lines, each with a timeout.
set -Eeuo pipefail

usage() {
  sed -n '2,/^set -Eeuo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
  exit 2
}

N=""
SEED=""
KINDS=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) SEED="${2:?--seed needs a value}"; shift 2 ;;
    --kinds) KINDS="${2:?--kinds needs a value}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    -*) echo "chaos: unknown option $1" >&2; usage ;;
    *) [ -z "$N" ] || usage; N="$1"; shift ;;
  esac
done
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] || usage
[ -n "$SEED" ] || SEED=$(( $(date +%s) % 1000000 ))
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "chaos: --seed must be a non-negative integer" >&2; exit 2; }
ALL_KINDS=(coordinator endpoint replica)
IFS=, read -r -a KIND_LIST <<< "${KINDS:-}"
for k in "${KIND_LIST[@]}"; do
  [[ " ${ALL_KINDS[*]} " == *" $k "* ]] || { echo "chaos: unknown kind '$k'" >&2; exit 2; }
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FLIGHT="${FLIGHT:-$ROOT/build/bin/flight}"
[ -x "$FLIGHT" ] || { echo "chaos: no flight binary at $FLIGHT (build first or set FLIGHT)" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "chaos: redis-server not installed" >&2; exit 2; }
ROUNDS="${CHAOS_ROUNDS:-5}"
HOSTS="${CHAOS_HOSTS:-3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/flight-chaos.XXXXXX")"

# Every process this script started, by pid; the EXIT trap ends the ones left.
declare -A PIDS=()
EP_NAMES=()
cleanup() {
  local rc=$? pid
  [ "$rc" = 0 ] || KEEP=1
  for pid in "${!PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "chaos: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "chaos: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
trap 'exit 130' INT TERM

now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }

# True once the process has exited (gone or a zombie not yet reaped).
exited() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ "$state" = Z ] || [ -z "$state" ]
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local seconds=$1 what="$2" deadline=$(( $(now_ms) + $1 * 1000 ))
  shift 2
  until "$@"; do
    if [ "$(now_ms)" -ge "$deadline" ]; then
      echo "chaos: timed out after ${seconds}s waiting for $what" >&2
      return 1
    fi
    sleep 0.05
  done
}

# A port nothing listens on, below the ephemeral range so that no outgoing
# connection holds it.
free_port() {
  local p
  while :; do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# reap PID: waits for an exited child; RC = its exit status. (Helpers that
# reap set globals: a $(...) subshell cannot wait for this shell's children.)
reap() {
  RC=0
  wait "$1" 2>/dev/null || RC=$?
  unset "PIDS[$1]"
}

# await PID: up to 30 s for a signalled process, then SIGKILL; RC = its exit
# status. (One SIGTERM only: a second one ends a stopping flight process hard.)
await() {
  wait_for 30 "pid $1 to stop" exited "$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null || true
  reap "$1"
}

log_has() { grep -q -- "$2" "$1" 2>/dev/null; }

# --- one trial's processes -----------------------------------------------------
# Globals per trial: T (its dir), REDIS_PORT, SERVE_PORTS[], SERVE_PIDS[],
# EP_NAMES[], EP_PIDS[], COORD_PID, CONFIG, OUT.

start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$T" >"$T/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS[$REDIS_PID]=redis
  wait_for 20 "redis-server on $REDIS_PORT" log_has "$T/redis.log" "Ready to accept connections"
}

# start_replica I [incarnation]; wait_replica I [incarnation]: until it listens.
start_replica() {
  local i=$1 log="$T/serve-$1.${2:-0}"
  "$FLIGHT" --log-level info serve --host 127.0.0.1 --port "${SERVE_PORTS[$i]}" \
    --token-file "$T/token" --state "redis://127.0.0.1:$REDIS_PORT" --state-prefix chaos: \
    --lease-s 3 >"$log.out" 2>"$log.err" &
  SERVE_PIDS[$i]=$!
  PIDS[$!]=replica
}
wait_replica() {
  wait_for 60 "replica $1 to listen" log_has "$T/serve-$1.${2:-0}.out" "listening on"
}

# start_endpoint I [incarnation]; wait_endpoint I [incarnation]: until registered.
start_endpoint() {
  local i=$1 log="$T/endpoint-$1.${2:-0}"
  "$FLIGHT" --log-level info endpoint --service "$SERVICE_URLS" --token-file "$T/token" \
    --name "${EP_NAMES[$i]}" --threads 1 --poll-wait-s 2 --max-backoff-s 1 \
    >"$log.out" 2>"$log.err" &
  EP_PIDS[$i]=$!
  PIDS[$!]=endpoint
}
wait_endpoint() {
  wait_for 60 "endpoint ${EP_NAMES[$1]} to register" \
    log_has "$T/endpoint-$1.${2:-0}.err" "registered as"
}

# start_coordinator fresh|resume [incarnation]
start_coordinator() {
  local log="$T/run.${2:-0}" args=(run "$CONFIG" -q)
  if [ "$1" = resume ]; then args+=(--resume "$OUT"); else args+=(--output "$OUT"); fi
  "$FLIGHT" --log-level info "${args[@]}" >"$log.out" 2>"$log.err" &
  COORD_PID=$!
  PIDS[$!]=coordinator
}

write_config() {
  cat >"$CONFIG" <<EOF
# chaos.sh: a small sync job over the REST control plane and a Redis data plane.
name: chaos
seed: 7
topology: {generate: tiers, aggregators: [2], workers: 6}
model: {name: mlp, options: {hidden: [32]}}
data:
  dataset: fashion_mnist
  root: /usr/share/datasets/fashion-mnist
  partition: {method: dirichlet, alpha: 1.0}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 30}
strategy: {name: fedavg, participation: 4}
rounds: $ROUNDS
threads: 1
control: {rest: {url: "$SERVICE_URLS", token_file: $T/token}}
data_plane: {connector: {kind: redis, host: 127.0.0.1, port: $REDIS_PORT}}
deploy: {launcher: embedded, hosts: $HOSTS, placement: round_robin}
EOF
}

# setup_trial NAME: redis, two replicas, the endpoints; leaves CONFIG and OUT set.
setup_trial() {
  T="$WORK/$1"
  mkdir -p "$T"
  head -c 24 /dev/urandom | base64 >"$T/token"
  SERVE_PIDS=()
  EP_PIDS=()
  start_redis
  SERVE_PORTS=("$(free_port)" "$(free_port)")
  # Nothing listens on them yet: draw again until the three ports differ.
  while [ "${SERVE_PORTS[0]}" = "$REDIS_PORT" ]; do SERVE_PORTS[0]=$(free_port); done
  while [ "${SERVE_PORTS[1]}" = "$REDIS_PORT" ] || [ "${SERVE_PORTS[1]}" = "${SERVE_PORTS[0]}" ]; do
    SERVE_PORTS[1]=$(free_port)
  done
  SERVICE_URLS="http://127.0.0.1:${SERVE_PORTS[0]},http://127.0.0.1:${SERVE_PORTS[1]}"
  CONFIG="$T/chaos.yaml"
  OUT="$T/out"
  write_config
  # The placement's endpoint names (the first column; '#' lines are comments).
  [ ${#EP_NAMES[@]} -gt 0 ] ||
    mapfile -t EP_NAMES < <("$FLIGHT" run "$CONFIG" --list-endpoints | awk '!/^#/ {print $1}')
  local i
  start_replica 0
  start_replica 1
  for i in "${!EP_NAMES[@]}"; do start_endpoint "$i"; done
  wait_replica 0
  wait_replica 1
  for i in "${!EP_NAMES[@]}"; do wait_endpoint "$i"; done
}

# teardown_trial: stops what is left. PROBLEMS names every process that was not
# killed but exited on its own (it should have served until the end) or did not
# exit 0 on SIGTERM.
teardown_trial() {
  local i pid
  local -A what=() died=()
  PROBLEMS=""
  for i in "${!EP_PIDS[@]}"; do what[${EP_PIDS[$i]}]="endpoint ${EP_NAMES[$i]}"; done
  for i in "${!SERVE_PIDS[@]}"; do what[${SERVE_PIDS[$i]}]="replica $i"; done
  # First who died on their own, then SIGTERM to all at once.
  for pid in "${!what[@]}"; do
    if exited "$pid"; then died[$pid]=1; else kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${!what[@]}"; do
    if [ -n "${died[$pid]:-}" ]; then
      reap "$pid"
      PROBLEMS+="  ${what[$pid]} died on its own (exit $RC)"$'\n'
    else
      await "$pid"
      [ "$RC" = 0 ] || PROBLEMS+="  ${what[$pid]} exited $RC on SIGTERM"$'\n'
    fi
  done
  kill -TERM "$REDIS_PID" 2>/dev/null || true
  await "$REDIS_PID"
  PROBLEMS="${PROBLEMS%$'\n'}"
}

# wait_coordinator SECONDS: waits for the coordinator; RC = its exit status
# (or "timeout", after killing it).
wait_coordinator() {
  if wait_for "$1" "the coordinator" exited "$COORD_PID" 2>/dev/null; then
    reap "$COORD_PID"
  else
    kill -KILL "$COORD_PID" 2>/dev/null || true
    reap "$COORD_PID"
    RC=timeout
  fi
}

# rounds_done: data rows in OUT/rounds.csv (0 before it exists).
rounds_done() {
  local n
  n=$(wc -l 2>/dev/null <"$OUT/rounds.csv") || n=1
  echo $(( n > 0 ? n - 1 : 0 ))
}
# round_reached K: true once K rounds are written or the coordinator has exited.
round_reached() { [ "$(rounds_done)" -ge "$1" ] || exited "$COORD_PID"; }

# rounds_rows: rounds.csv's learning columns (what a resumed run must write
# again exactly; times and byte counts legitimately differ).
rounds_rows() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
           { print $col["round"], $col["test_accuracy"], $col["test_loss"], $col["train_loss"],
                   $col["selected"], $col["returned"] }' "$OUT/rounds.csv" 2>/dev/null || true
}

model_sha() { sha256sum "$OUT/model.pt" 2>/dev/null | awk '{print $1}' || true; }

# --- the reference: the undisturbed run ---------------------------------------
echo "chaos: seed $SEED, $N trial(s), flight $FLIGHT, work dir $WORK"
setup_trial reference
t0=$(now_ms)
start_coordinator fresh
# SEG_MS[k]: how long phase k of the undisturbed run took; phase k (1..ROUNDS)
# runs until round k is written (phase 1 includes the start-up), phase ROUNDS+1
# from then to the exit (summary, model.pt). A trial kills in a phase drawn
# uniformly, at an offset drawn uniformly within the phase's reference length,
# so that the short late rounds are hit as often as the long first one.
declare -a SEG_MS=()
seen=0
last=$t0
while ! exited "$COORD_PID"; do
  done_now=$(rounds_done)
  while [ "$seen" -lt "$done_now" ]; do
    seen=$(( seen + 1 ))
    SEG_MS[$seen]=$(( $(now_ms) - last ))
    last=$(now_ms)
  done
  [ $(( $(now_ms) - t0 )) -lt 600000 ] || break
  sleep 0.02
done
wait_coordinator 1
REF_MS=$(( $(now_ms) - t0 ))
SEG_MS[$(( ROUNDS + 1 ))]=$(( $(now_ms) - last ))
REF_SHA=$(model_sha)
REF_ROWS=$(rounds_rows)
rc=$RC
teardown_trial
if [ "$rc" != 0 ] || [ -z "$REF_SHA" ] || [ -n "$PROBLEMS" ]; then
  echo "chaos: the undisturbed run failed (exit $rc); logs in $T" >&2
  [ -z "$PROBLEMS" ] || echo "$PROBLEMS" >&2
  tail -n 20 "$T"/run.0.err >&2 || true
  KEEP=1
  exit 1
fi
# The same config embedded (in-process invoker, memory data plane) must give the
# same bits: the undisturbed distributed run is itself checked.
"$FLIGHT" run "$CONFIG" -q --output "$WORK/embedded" \
  --set control=local --set 'data_plane.connector={kind: memory}' >"$WORK/embedded.log" 2>&1
EMB_SHA=$(sha256sum "$WORK/embedded/model.pt" | awk '{print $1}')
[ "$seen" = "$ROUNDS" ] || { echo "chaos: the undisturbed run wrote $seen of $ROUNDS rounds" >&2; exit 1; }
echo "reference: ${REF_MS} ms (phases ${SEG_MS[*]} ms), model.pt sha256 ${REF_SHA:0:16}, embedded run $( \
  [ "$EMB_SHA" = "$REF_SHA" ] && echo identical || echo "DIFFERENT (${EMB_SHA:0:16})")"
[ "$EMB_SHA" = "$REF_SHA" ] || { KEEP=1; exit 1; }
TIMEOUT_S="${CHAOS_TIMEOUT_S:-$(( REF_MS * 10 / 1000 + 60 ))}"

# --- the trials ----------------------------------------------------------------
killed=0
survived=0
identical=0
failed_seeds=()
for (( t = 1; t <= N; t++ )); do
  trial_seed=$(( SEED + t - 1 ))
  RANDOM=$trial_seed
  # bash's RANDOM is a Park-Miller LCG: the first draws after seeding follow
  # consecutive seeds closely, so skip a few.
  : $RANDOM $RANDOM $RANDOM $RANDOM
  # Always four draws, so that a seed gives the same victim and moment whether
  # or not --kinds fixes the kind.
  kind_draw=$RANDOM
  victim_draw=$RANDOM
  phase_draw=$RANDOM
  moment_draw=$(( RANDOM * 32768 + RANDOM ))
  if [ ${#KIND_LIST[@]} -gt 0 ]; then
    kind=${KIND_LIST[$(( (t - 1) % ${#KIND_LIST[@]} ))]}
  else
    kind=${ALL_KINDS[$(( kind_draw % 3 ))]}
  fi
  case "$kind" in
    endpoint) victim=$(( victim_draw % ${#EP_NAMES[@]} )) ;;
    replica) victim=$(( victim_draw % 2 )) ;;
    *) victim=0 ;;
  esac
  phase=$(( 1 + phase_draw % (ROUNDS + 1) ))
  delay_ms=$(( moment_draw % (SEG_MS[phase] + 1) ))
  if [ "$phase" = 1 ]; then
    moment="${delay_ms} ms after its start"
  elif [ "$phase" -le "$ROUNDS" ]; then
    moment="in round $phase, ${delay_ms} ms after round $(( phase - 1 ))"
  else
    moment="${delay_ms} ms after the last round"
  fi

  setup_trial "trial-$t"
  t0=$(now_ms)
  start_coordinator fresh
  wait_for "$TIMEOUT_S" "round $(( phase - 1 ))" round_reached $(( phase - 1 )) || true
  sleep "$(printf '%d.%03d' $(( delay_ms / 1000 )) $(( delay_ms % 1000 )))"  # the experiment's input
  case "$kind" in
    endpoint) what="endpoint ${EP_NAMES[$victim]}" ;;
    replica) what="replica $victim" ;;
    *) what="$kind" ;;
  esac
  note=""
  if exited "$COORD_PID"; then
    note=" (missed: the run had ended)"
  else
    killed=$(( killed + 1 ))
    case "$kind" in
      coordinator)
        kill -KILL "$COORD_PID"
        wait_for 10 "the killed coordinator" exited "$COORD_PID"
        reap "$COORD_PID"
        if [ -f "$OUT/checkpoints/LATEST" ]; then
          note=" (resumed after round $(sed 's/[^0-9]//g; s/^0*//' "$OUT/checkpoints/LATEST"))"
          start_coordinator resume 1
        else
          note=" (before the first checkpoint: fresh start)"
          start_coordinator fresh 1
        fi
        ;;
      endpoint)
        kill -KILL "${EP_PIDS[$victim]}"
        wait_for 10 "the killed endpoint" exited "${EP_PIDS[$victim]}"
        reap "${EP_PIDS[$victim]}"
        start_endpoint "$victim" 1
        wait_endpoint "$victim" 1 || true
        ;;
      replica)
        role=$(curl -s -m 2 "http://127.0.0.1:${SERVE_PORTS[$victim]}/v1/healthz" |
          sed -n 's/.*"role": *"\([a-z]*\)".*/\1/p') || true
        what+=" (${role:-unknown})"
        kill -KILL "${SERVE_PIDS[$victim]}"
        wait_for 10 "the killed replica" exited "${SERVE_PIDS[$victim]}"
        reap "${SERVE_PIDS[$victim]}"
        start_replica "$victim" 1
        wait_replica "$victim" 1 || true
        ;;
    esac
  fi
  wait_coordinator "$TIMEOUT_S"
  rc=$RC
  elapsed=$(( $(now_ms) - t0 ))
  sha=$(model_sha)
  rows=$(rounds_rows)
  teardown_trial
  ok=1
  [ "$rc" = 0 ] && [ -z "$PROBLEMS" ] || ok=0
  same=0
  [ "$ok" = 1 ] && survived=$(( survived + 1 ))
  if [ -z "$sha" ]; then
    verdict="MISSING (no model.pt)"
  elif [ "$sha" != "$REF_SHA" ]; then
    verdict="DIFFERENT (sha256 ${sha:0:16})"
  elif [ "$rows" = "$REF_ROWS" ]; then
    verdict=identical
    same=1
    identical=$(( identical + 1 ))
  else
    verdict="identical, but rounds.csv DIFFERENT"
    PROBLEMS+="${PROBLEMS:+$'\n'}  rounds.csv differs from the undisturbed run's:"$'\n'"$(
      diff <(echo "$REF_ROWS") <(echo "$rows") | sed 's/^/    /' || true)"
  fi
  printf 'trial %d/%d seed %d: kill %s %s%s; run exit %s in %d ms; model %s\n' \
    "$t" "$N" "$trial_seed" "$what" "$moment" "$note" "$rc" "$elapsed" \
    "$verdict"
  [ -z "$PROBLEMS" ] || echo "$PROBLEMS"
  if [ "$ok" = 1 ] && [ "$same" = 1 ]; then
    rm -rf "$T"
  else
    failed_seeds+=("$trial_seed")
    echo "  logs kept in $T"
    KEEP=1
  fi
done

echo "chaos: trials $N, killed mid-run $killed, survived $survived, identical $identical (seed $SEED)"
if [ ${#failed_seeds[@]} -gt 0 ]; then
  echo "chaos: failed trial seeds: ${failed_seeds[*]}"
  exit 1
fi

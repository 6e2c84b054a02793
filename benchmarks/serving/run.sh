#!/usr/bin/env bash
# Serving benchmarks against a real Release server process on loopback:
#   1. batching policies (skab-pump, REST binary, one 64x8 window per request, concurrency 1/8/32/128, levels and modes
#      interleaved): unbatched; work-conserving (the default policy) with batches of up to 32 and 8; Triton's delay
#      policy (500 us) with batches of up to 32 and 8
#   2. server overhead at concurrency 1 (REST binary, REST JSON, gRPC)
#   3. variant swap under load (8 clients; the serving variant's sparsity changed through the admin API)
# Writes RESULTS (default benchmarks/serving/results-policies)/*.json with summary.json, and PLOT (default
# docs/plots/batching-policies.png).
# Environment: DURATION (s per level, default 8), WARMUP (s, default 2), ROUNDS (repeats of the batching sweep,
# default 1; the summary takes medians), SWAP_SECONDS (default 30), CONCURRENCY (default "1 8 32 128"), MODES (default
# "off wc wc8 delay delay8"),
# SKIP_BUILD=1 to use existing Release builds, SERVER_LOG_LEVEL (default: the shipped appsettings, per-request
# logs at Information included), SKAB_DIR (default ../shared/data/skab) for replayed windows.
# Elsewhere (a machine with more cores, no SDK): SERVER_BIN / LOADGEN_BIN name self-contained executables instead
# of the Release builds; SERVER_CPUS / LOADGEN_CPUS (taskset CPU lists) keep the two on separate cores;
# PARTS (default "batching overhead swap") picks the parts; SKIP_SUMMARY=1 leaves the summary and plot to summarize.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benchmarks/serving"
RESULTS="${RESULTS:-$HERE/results-policies}"
PLOT="${PLOT:-$ROOT/docs/plots/batching-policies.png}"
PY="${PY:-/usr/bin/python3}"
PARTS="${PARTS:-batching overhead swap}"
DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-2}"
SWAP_SECONDS="${SWAP_SECONDS:-30}"
ROUNDS="${ROUNDS:-1}"
CONCURRENCY="${CONCURRENCY:-1 8 32 128}"
SKAB_DIR="${SKAB_DIR:-$ROOT/../shared/data/skab}"
# A worktree sits one level deeper than the main checkout.
[[ -d "$SKAB_DIR" ]] || [[ ! -d "$ROOT/../../shared/data/skab" ]] || SKAB_DIR="$(cd "$ROOT/../../shared/data/skab" && pwd)"
TOKEN="serving-benchmark-token"
mkdir -p "$RESULTS" "$(dirname "$PLOT")"

if [[ "${SKIP_BUILD:-0}" != 1 && -z "${SERVER_BIN:-}" ]]; then
  dotnet build -c Release "$ROOT/src/SparseInference.Server/SparseInference.Server.csproj" -v q -nologo
  dotnet build -c Release "$ROOT/tools/SparseInference.LoadGen/SparseInference.LoadGen.csproj" -v q -nologo
fi
SERVER_DLL="$ROOT/src/SparseInference.Server/bin/Release/net10.0/SparseInference.Server.dll"
LOADGEN_DLL="$ROOT/tools/SparseInference.LoadGen/bin/Release/net10.0/SparseInference.LoadGen.dll"
SERVER_CMD=(dotnet "$SERVER_DLL"); [[ -z "${SERVER_BIN:-}" ]] || { SERVER_CMD=("$SERVER_BIN"); SERVER_DLL="$SERVER_BIN"; }
LOADGEN_CMD=(dotnet "$LOADGEN_DLL"); [[ -z "${LOADGEN_BIN:-}" ]] || LOADGEN_CMD=("$LOADGEN_BIN")
[[ -z "${SERVER_CPUS:-}" ]] || SERVER_CMD=(taskset -c "$SERVER_CPUS" "${SERVER_CMD[@]}")
[[ -z "${LOADGEN_CPUS:-}" ]] || LOADGEN_CMD=(taskset -c "$LOADGEN_CPUS" "${LOADGEN_CMD[@]}")

CSV_ARGS=()
if [[ -d "$SKAB_DIR" ]]; then CSV_ARGS=(--csv-dir "$SKAB_DIR"); else echo "SKAB not found at $SKAB_DIR: synthetic windows" >&2; fi

# A model repository of five models on the same weights: unbatched, work-conserving and delay policy (32 and 8 each).
REPO="$(mktemp -d)"
WORK="$(mktemp -d)"
"$PY" "$HERE/make_repository.py" "$ROOT/models/skab-pump" "$REPO"

read -r REST GRPC METRICS ADMIN < <("$PY" -c '
import socket
socks=[socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1",0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')

# Started from its output folder, as the container image does (WORKDIR /app): the content root is the working
# directory, and only there does the server find its shipped appsettings.json (log levels among them).
(cd "$(dirname "$SERVER_DLL")" && SparseInference__Ports__Rest=$REST SparseInference__Ports__Grpc=$GRPC \
SparseInference__Ports__Metrics=$METRICS SparseInference__Ports__Admin=$ADMIN \
SparseInference__ModelRepository="$REPO" SparseInference__Admin__Token="$TOKEN" \
SparseInference__Shutdown__DrainDelaySeconds=0 \
  exec env ${SERVER_LOG_LEVEL:+"Serilog__MinimumLevel__Default=$SERVER_LOG_LEVEL"} "${SERVER_CMD[@]}" >"$WORK/server.log" 2>&1) &
SERVER_PID=$!
cleanup() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$REPO" "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$REST/v2/health/ready" >/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/server.log" >&2; exit 1; fi
  sleep 0.5
done
curl -fs "http://127.0.0.1:$REST/v2/health/ready" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

REST_URL="http://127.0.0.1:$REST"
GRPC_URL="http://127.0.0.1:$GRPC"
ADMIN_URL="http://127.0.0.1:$ADMIN"
loadgen() { "${LOADGEN_CMD[@]}" --url "$REST_URL" --grpc-url "$GRPC_URL" "${CSV_ARGS[@]}" --json "$@"; }
stats() { curl -fs "$REST_URL/v2/models/$1/stats"; }
# The server's CPU time (user + system, clock ticks) and a model's served requests: CPU per request is a figure that
# other load on the machine disturbs far less than throughput.
server_cpu() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
served() { stats "$1" | "$PY" -c 'import json, sys; print(sum(m["inference_stats"]["success"]["count"] for m in json.load(sys.stdin)["model_stats"]))'; }

{
  echo "{\"started_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo " \"cpu\": \"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\", \"cores\": $(nproc), \"server_cpus\": \"${SERVER_CPUS:-all}\", \"loadgen_cpus\": \"${LOADGEN_CPUS:-all}\","
  echo " \"uptime_start\": \"$(uptime)\","
  echo " \"duration_s\": $DURATION, \"warmup_s\": $WARMUP, \"rounds\": $ROUNDS, \"swap_seconds\": $SWAP_SECONDS,"
  echo " \"server_device\": \"${SparseInference__Device:-cpu}\", \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\"}"
} >"$RESULTS/machine.json"

: >"$RESULTS/load.txt"
load_sample() { echo "$1 $(date -u +%H:%M:%S) $(uptime | sed 's/.*load average: //')" >>"$RESULTS/load.txt"; }

# Batching modes: the model each one serves from (make_repository.py).
declare -A MODEL=([off]=skab-pump-unbatched [wc]=skab-pump [wc8]=skab-pump-batch8 [delay]=skab-pump-delay [delay8]=skab-pump-delay8)
read -r -a MODES <<<"${MODES:-off wc wc8 delay delay8}"

# Unmeasured warm-up of every model and, for the overhead part, all three protocol paths (JIT, connection pools, first batchers).
load_sample warmup
for mode in "${MODES[@]}"; do
  model=${MODEL[$mode]}
  # Exit status ignored: on a busy machine the first call of a path can outlast a short warm-up window.
  loadgen -m "$model" --encoding binary --concurrency 8 --duration 4 --warmup 0 >/dev/null || true
  if [[ " $PARTS " == *" overhead "* && ( $mode == off || $mode == wc ) ]]; then
    loadgen -m "$model" --encoding json --concurrency 1 --duration 2 --warmup 0 >/dev/null || true
    loadgen -m "$model" --protocol grpc --concurrency 1 --duration 2 --warmup 0 >/dev/null || true
  fi
done

# 1. Batching policies, interleaved: each concurrency level runs every mode back to back, and each round starts with
#    the next mode, so machine-load drift and position in the sequence hit every mode alike.
if [[ " $PARTS " == *" batching "* ]]; then
  for round in $(seq 1 "$ROUNDS"); do
    for c in $CONCURRENCY; do
      for i in "${!MODES[@]}"; do
        mode=${MODES[$(( (i + round - 1) % ${#MODES[@]} ))]}
        echo "batching round $round, $mode, concurrency $c" >&2
        load_sample "batching-$mode-c$c-r$round"
        cpu0=$(server_cpu); served0=$(served "${MODEL[$mode]}")
        loadgen -m "${MODEL[$mode]}" --encoding binary --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" \
          >"$RESULTS/batching-$mode-c$c-r$round.json"
        cpu1=$(server_cpu); served1=$(served "${MODEL[$mode]}")
        echo "{\"server_cpu_ticks\": $((cpu1 - cpu0)), \"ticks_per_s\": $(getconf CLK_TCK), \"served\": $((served1 - served0))}" \
          >"$RESULTS/batching-$mode-c$c-r$round.cpu.json"
      done
    done
  done
  # Per-batch-size compute of the engine over the whole sweep (the stats endpoint's batch_stats).
  for mode in "${MODES[@]}"; do stats "${MODEL[$mode]}" >"$RESULTS/batching-$mode.stats.json"; done
fi

# 2. Overhead at concurrency 1: server stats (total, queue, compute) around each run.
if [[ " $PARTS " == *" overhead "* ]]; then for proto in rest-binary rest-json grpc; do
  case $proto in
    rest-binary) args=(--protocol rest --encoding binary) ;;
    rest-json) args=(--protocol rest --encoding json) ;;
    grpc) args=(--protocol grpc) ;;
  esac
  for model in skab-pump skab-pump-unbatched; do
    echo "overhead $proto $model" >&2
    load_sample "overhead-$proto-$model"
    stats "$model" >"$WORK/before.json"
    loadgen -m "$model" "${args[@]}" --concurrency 1 --duration "$DURATION" --warmup "$WARMUP" >"$RESULTS/overhead-$proto-$model.json"
    stats "$model" >"$WORK/after.json"
    "$PY" "$HERE/stats_delta.py" "$WORK/before.json" "$WORK/after.json" >"$RESULTS/overhead-$proto-$model.server.json"
  done
done; fi

if [[ " $PARTS " == *" swap "* ]]; then
# 3. Swap under load: a variant 'swap' serves 100%; its sparsity flips through the admin API during the middle phase.
AUTH="Authorization: Bearer $TOKEN"
curl -fs -X PUT -H "$AUTH" -H 'Content-Type: application/json' \
  "$ADMIN_URL/admin/models/skab-pump/variants/swap" -d '{"pattern":"block-topk","sparsity":0.75}' >/dev/null
curl -fs -X POST -H "$AUTH" "$ADMIN_URL/admin/models/skab-pump/promote/swap" >/dev/null
PHASE=$(( SWAP_SECONDS / 2 ))
echo "swap: before" >&2
load_sample swap-before
loadgen -m skab-pump --encoding binary --concurrency 8 --duration "$PHASE" --warmup 1 >"$RESULTS/swap-before.json"
echo "swap: during" >&2
load_sample swap-during
"$PY" "$HERE/swapper.py" "$ADMIN_URL" "$TOKEN" skab-pump swap "$SWAP_SECONDS" 0.1 >"$RESULTS/swap-changes.json" &
SWAPPER=$!
loadgen -m skab-pump --encoding binary --concurrency 8 --duration "$SWAP_SECONDS" --warmup 0 >"$RESULTS/swap-during.json"
wait "$SWAPPER"
echo "swap: after" >&2
load_sample swap-after
loadgen -m skab-pump --encoding binary --concurrency 8 --duration "$PHASE" --warmup 1 >"$RESULTS/swap-after.json"
curl -fs -H "$AUTH" "$ADMIN_URL/admin/models/skab-pump/variants" >"$RESULTS/swap-final-table.json" || true
fi

load_sample end
echo "{\"finished_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"uptime_end\": \"$(uptime)\"}" >"$RESULTS/machine-end.json"
[[ "${SKIP_SUMMARY:-0}" == 1 ]] || "$PY" "$HERE/summarize.py" "$RESULTS" "$PLOT"

#!/usr/bin/env bash
# Soak test: the server under ~70% of its measured capacity for a bounded time, with a hot swap through the admin
# API every SWAP_INTERVAL seconds, sampling failed requests, memory, threads and open handles over time, and judging
# at the end: zero failed requests, and memory, threads and handles flat within the stated tolerances.
# Loopback traffic only; the server process is started and stopped here.
#
# Usage: tools/soak/soak.sh [DURATION_SECONDS]        (default 600)
# Environment:
#   SWAP_INTERVAL (30)        seconds between hot swaps (PUT of the serving variant's sparsity, 0.75 <-> 0.9)
#   CAPACITY_FRACTION (0.7)   share of the measured capacity offered as an open-loop rate
#   CAPACITY_LEVELS (1,4,16)  closed-loop concurrency levels of the capacity probe; CAPACITY_SECONDS (8) each
#   WARMUP_SECONDS (30)       seconds at the soak rate before the judged DURATION starts (the load generator's
#                             connection pool and the server's thread pool grow); failures there are reported apart
#   SAMPLE_INTERVAL (5)       seconds between samples of RSS, threads, handles and the server's request counters
#   SETTLE_SECONDS (60)       samples of the judged run before this are left out of the drift comparison
#   RSS_TOLERANCE_PCT (10)    allowed growth of median RSS, last fifth of the judged samples against the first fifth
#   THREAD_TOLERANCE (8)      allowed growth of the median thread count, same windows
#   HANDLE_TOLERANCE (8)      allowed growth of the median count of open descriptors other than sockets, same windows
#   WINDOW (64), CONFIGURATION (Release), SKIP_BUILD (unset)
#   SOURCE_COMMIT (git HEAD)  recorded in the summary, for a run from an exported tree
#   OUT_DIR (tools/soak/results/<UTC time>)   small text/JSON results; build and server logs go to WORK_DIR (/tmp/...)
set -euo pipefail

DURATION=${1:-600}
SWAP_INTERVAL=${SWAP_INTERVAL:-30}
WARMUP_SECONDS=${WARMUP_SECONDS:-30}
CAPACITY_FRACTION=${CAPACITY_FRACTION:-0.7}
CAPACITY_LEVELS=${CAPACITY_LEVELS:-1,4,16}
CAPACITY_SECONDS=${CAPACITY_SECONDS:-8}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-5}
SETTLE_SECONDS=${SETTLE_SECONDS:-60}
RSS_TOLERANCE_PCT=${RSS_TOLERANCE_PCT:-10}
THREAD_TOLERANCE=${THREAD_TOLERANCE:-8}
HANDLE_TOLERANCE=${HANDLE_TOLERANCE:-8}
WINDOW=${WINDOW:-64}
CONFIGURATION=${CONFIGURATION:-Release}
MODEL=skab-pump
VARIANT=soak
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=${OUT_DIR:-$ROOT/tools/soak/results/$STAMP}
WORK_DIR=${WORK_DIR:-/tmp/sparseinference-soak-$STAMP}
mkdir -p "$OUT_DIR" "$WORK_DIR"
TOKEN=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_hex(16))')

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
REST=$(free_port); GRPC=$(free_port); METRICS=$(free_port); ADMIN=$(free_port)

if [[ -z "${SKIP_BUILD:-}" ]]; then
  dotnet build "$ROOT/src/SparseInference.Server/SparseInference.Server.csproj" -c "$CONFIGURATION" -v q -nologo >"$WORK_DIR/build.log" 2>&1
  dotnet build "$ROOT/tools/SparseInference.LoadGen/SparseInference.LoadGen.csproj" -c "$CONFIGURATION" -v q -nologo >>"$WORK_DIR/build.log" 2>&1
fi
SERVER_DLL="$ROOT/src/SparseInference.Server/bin/$CONFIGURATION/net10.0/SparseInference.Server.dll"
LOADGEN_DLL="$ROOT/tools/SparseInference.LoadGen/bin/$CONFIGURATION/net10.0/SparseInference.LoadGen.dll"

# The content root is the build output, so the server reads its appsettings.json (log levels included) as deployed.
SparseInference__Ports__Rest=$REST SparseInference__Ports__Grpc=$GRPC SparseInference__Ports__Metrics=$METRICS \
SparseInference__Ports__Admin=$ADMIN SparseInference__ModelRepository="$ROOT/models" SparseInference__Shutdown__DrainDelaySeconds=1 \
SparseInference__Admin__Token=$TOKEN \
  dotnet "$SERVER_DLL" --contentRoot "$(dirname "$SERVER_DLL")" >"$WORK_DIR/server.log" 2>&1 &
PID=$!
cleanup() { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap cleanup EXIT

BASE="http://127.0.0.1:$REST"
ADMIN_BASE="http://127.0.0.1:$ADMIN"
for _ in $(seq 1 240); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v2/health/ready" || true)" == 200 ]] && break
  kill -0 "$PID" 2>/dev/null || { echo "server exited during start; see $WORK_DIR/server.log" >&2; exit 1; }
  sleep 0.5
done

# PUT the soak variant's sparsity through the admin API; prints "<http status> <seconds>".
put_variant() {
  curl -s -o /dev/null -w '%{http_code} %{time_total}' -X PUT "$ADMIN_BASE/admin/models/$MODEL/variants/$VARIANT" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"pattern\": \"block-topk\", \"sparsity\": $1}" || echo "000 0"
}

# The soak variant serves all traffic, so every swap replaces what answers the live requests.
read -r code _ <<<"$(put_variant 0.75)"
[[ "$code" == 201 || "$code" == 200 ]] || { echo "creating variant '$VARIANT' failed: HTTP $code" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$ADMIN_BASE/admin/models/$MODEL/promote/$VARIANT" -H "Authorization: Bearer $TOKEN" || true)
[[ "$code" == 200 ]] || { echo "promoting variant '$VARIANT' failed: HTTP $code" >&2; exit 1; }

# rss_kb threads fds sockets of the server process: fds counts every open descriptor but sockets (the client
# connections, whose number follows the load generator's connection pool), sockets those apart.
process_sample() {
  local rss threads all sockets
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")
  all=$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  sockets=$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' 2>/dev/null | wc -l)
  echo "$rss $threads $((all - sockets)) $sockets"
}

# success non_success: the server's own request counters (all models, both protocols).
server_counts() {
  curl -s "http://127.0.0.1:$METRICS/metrics" | awk '
    /^sparseinference_requests_total\{/ { if ($0 ~ /outcome="success"/) ok += $NF; else bad += $NF }
    END { printf "%d %d\n", ok, bad }'
}

loadgen() { dotnet "$LOADGEN_DLL" --url "$BASE" --model "$MODEL" --window "$WINDOW" --json "$@"; }

{
  echo "soak of $MODEL (variant $VARIANT: block-topk, sparsity swapped 0.75 <-> 0.9 every ${SWAP_INTERVAL}s through the admin API)"
  echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), commit ${SOURCE_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  echo "capacity: closed loop at concurrency $CAPACITY_LEVELS, ${CAPACITY_SECONDS}s each"
} | tee "$OUT_DIR/summary.txt"
loadgen --concurrency "$CAPACITY_LEVELS" --duration "$CAPACITY_SECONDS" --warmup 2 >"$OUT_DIR/capacity.json"
CAPACITY=$(/usr/bin/python3 -c 'import json,sys; print(max(r["throughput_per_s"] for r in json.load(open(sys.argv[1]))["results"]))' "$OUT_DIR/capacity.json")
RATE=$(/usr/bin/python3 -c "print(round($CAPACITY * $CAPACITY_FRACTION, 1))")
echo "capacity ${CAPACITY}/s; soak rate ${RATE}/s (${CAPACITY_FRACTION} of capacity) for ${DURATION}s" | tee -a "$OUT_DIR/summary.txt"

read -r WOK0 WBAD0 <<<"$(server_counts)"
loadgen --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP_SECONDS" >"$OUT_DIR/soak.json" &
LOADGEN=$!
sleep "$WARMUP_SECONDS"
LOAD_START=$(date +%s.%N)

echo "elapsed_s rss_kb threads fds sockets server_success server_failed" >"$OUT_DIR/samples.txt"
echo "elapsed_s sparsity http_status seconds" >"$OUT_DIR/swaps.txt"
read -r OK0 BAD0 <<<"$(server_counts)"
echo "warm-up: ${WARMUP_SECONDS}s at ${RATE}/s, server counted $((OK0 - WOK0)) ok and $((BAD0 - WBAD0)) not ok (not judged)" | tee -a "$OUT_DIR/summary.txt"
NEXT_SAMPLE=0; NEXT_SWAP=$SWAP_INTERVAL; SWAPS=0
while kill -0 "$LOADGEN" 2>/dev/null; do
  ELAPSED=$(/usr/bin/python3 -c "import time; print(int(time.time() - $LOAD_START))")
  if (( ELAPSED >= NEXT_SAMPLE )); then
    read -r OK BAD <<<"$(server_counts)"
    echo "$ELAPSED $(process_sample) $((OK - OK0)) $((BAD - BAD0))" >>"$OUT_DIR/samples.txt" || true
    NEXT_SAMPLE=$((NEXT_SAMPLE + SAMPLE_INTERVAL))
  fi
  if (( ELAPSED >= NEXT_SWAP && ELAPSED < DURATION )); then
    SPARSITY=$([[ $((SWAPS % 2)) == 0 ]] && echo 0.9 || echo 0.75)
    echo "$ELAPSED $SPARSITY $(put_variant "$SPARSITY")" >>"$OUT_DIR/swaps.txt"
    SWAPS=$((SWAPS + 1)); NEXT_SWAP=$((NEXT_SWAP + SWAP_INTERVAL))
  fi
  sleep 1
done
wait "$LOADGEN"
sleep 1
read -r OK BAD <<<"$(server_counts)"
echo "$(/usr/bin/python3 -c "import time; print(int(time.time() - $LOAD_START))") $(process_sample) $((OK - OK0)) $((BAD - BAD0))" >>"$OUT_DIR/samples.txt"
LIVE=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v2/health/live" || true)
# Keep only the server's warnings and errors (the request log is one line per inference).
grep -E '"Level":"(Warning|Error|Fatal)"' "$WORK_DIR/server.log" | head -n 200 >"$OUT_DIR/server-warnings.txt" || true

/usr/bin/python3 "$ROOT/tools/soak/verdict.py" "$OUT_DIR" \
  --settle "$SETTLE_SECONDS" --rss-tolerance-pct "$RSS_TOLERANCE_PCT" --thread-tolerance "$THREAD_TOLERANCE" \
  --handle-tolerance "$HANDLE_TOLERANCE" --rate "$RATE" --capacity "$CAPACITY" --duration "$DURATION" \
  --swap-interval "$SWAP_INTERVAL" --live-status "$LIVE" | tee -a "$OUT_DIR/summary.txt"
echo "results in $OUT_DIR (server log: $WORK_DIR/server.log)"
grep -q '^verdict: PASS' "$OUT_DIR/summary.txt"

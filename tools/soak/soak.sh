#!/usr/bin/env bash
# Soak test: the server under ~70% of its measured capacity for a bounded time, with a hot reload of the model
# every SWAP_INTERVAL seconds, recording failed requests, memory, threads and open handles at start and end.
# Loopback traffic only; the server process is started and stopped here.
#
# Usage: tools/soak/soak.sh [DURATION_SECONDS]        (default 600)
# Environment: SWAP_INTERVAL (30), CAPACITY_FRACTION (0.7), CAPACITY_LEVELS (1,4,16), CAPACITY_SECONDS (8),
#              WINDOW (64), CONFIGURATION (Release), SKIP_BUILD (unset), OUT_DIR (/tmp/sparseinference-soak-<time>)
#
# Hot swaps: the admin API is not mapped by the server host yet, so a swap is a reload of the serving model through
# the Open Inference Protocol repository extension (POST /v2/repository/models/<model>/load), which builds the
# model anew and replaces the serving version atomically.
set -euo pipefail

DURATION=${1:-600}
SWAP_INTERVAL=${SWAP_INTERVAL:-30}
CAPACITY_FRACTION=${CAPACITY_FRACTION:-0.7}
CAPACITY_LEVELS=${CAPACITY_LEVELS:-1,4,16}
CAPACITY_SECONDS=${CAPACITY_SECONDS:-8}
WINDOW=${WINDOW:-64}
CONFIGURATION=${CONFIGURATION:-Release}
MODEL=skab-pump
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT_DIR=${OUT_DIR:-/tmp/sparseinference-soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT_DIR"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
REST=$(free_port); GRPC=$(free_port); METRICS=$(free_port); ADMIN=$(free_port)

if [[ -z "${SKIP_BUILD:-}" ]]; then
  dotnet build "$ROOT/src/SparseInference.Server/SparseInference.Server.csproj" -c "$CONFIGURATION" -v q -nologo >"$OUT_DIR/build.log" 2>&1
  dotnet build "$ROOT/tools/SparseInference.LoadGen/SparseInference.LoadGen.csproj" -c "$CONFIGURATION" -v q -nologo >>"$OUT_DIR/build.log" 2>&1
fi
SERVER_DLL="$ROOT/src/SparseInference.Server/bin/$CONFIGURATION/net10.0/SparseInference.Server.dll"
LOADGEN_DLL="$ROOT/tools/SparseInference.LoadGen/bin/$CONFIGURATION/net10.0/SparseInference.LoadGen.dll"

SparseInference__Ports__Rest=$REST SparseInference__Ports__Grpc=$GRPC SparseInference__Ports__Metrics=$METRICS \
SparseInference__Ports__Admin=$ADMIN SparseInference__ModelRepository="$ROOT/models" SparseInference__Shutdown__DrainDelaySeconds=1 \
  dotnet "$SERVER_DLL" >"$OUT_DIR/server.log" 2>&1 &
PID=$!
cleanup() { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap cleanup EXIT

BASE="http://127.0.0.1:$REST"
for _ in $(seq 1 120); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v2/health/ready" || true)" == 200 ]] && break
  kill -0 "$PID" 2>/dev/null || { echo "server exited during start; see $OUT_DIR/server.log" >&2; exit 1; }
  sleep 0.5
done

snapshot() { # label -> one line: rss_kb hwm_kb threads fds
  local rss hwm threads fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")
  fds=$(ls "/proc/$PID/fd" | wc -l)
  echo "$1 rss_kb=$rss hwm_kb=$hwm threads=$threads fds=$fds"
}

loadgen() { dotnet "$LOADGEN_DLL" --url "$BASE" --model "$MODEL" --window "$WINDOW" --json "$@"; }

echo "capacity: closed loop at concurrency $CAPACITY_LEVELS, ${CAPACITY_SECONDS}s each" | tee "$OUT_DIR/summary.txt"
loadgen --concurrency "$CAPACITY_LEVELS" --duration "$CAPACITY_SECONDS" --warmup 2 >"$OUT_DIR/capacity.json"
CAPACITY=$(/usr/bin/python3 -c 'import json,sys; print(max(r["throughput_per_s"] for r in json.load(open(sys.argv[1]))["results"]))' "$OUT_DIR/capacity.json")
RATE=$(/usr/bin/python3 -c "print(round($CAPACITY * $CAPACITY_FRACTION, 1))")
echo "capacity ${CAPACITY}/s; soak rate ${RATE}/s for ${DURATION}s, reload every ${SWAP_INTERVAL}s" | tee -a "$OUT_DIR/summary.txt"

START=$(snapshot start)
echo "$START" | tee -a "$OUT_DIR/summary.txt"
loadgen --rate "$RATE" --duration "$DURATION" --warmup 0 >"$OUT_DIR/soak.json" &
LOADGEN=$!

SWAPS=0; SWAP_FAILURES=0
echo "elapsed_s rss_kb threads fds" >"$OUT_DIR/samples.txt"
ELAPSED=0
while kill -0 "$LOADGEN" 2>/dev/null; do
  sleep 5; ELAPSED=$((ELAPSED + 5))
  snapshot "$ELAPSED" | awk '{print $1, substr($2,8), substr($4,9), substr($5,5)}' >>"$OUT_DIR/samples.txt" || true
  if (( ELAPSED % SWAP_INTERVAL == 0 && ELAPSED < DURATION )); then
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/v2/repository/models/$MODEL/load" || true)
    SWAPS=$((SWAPS + 1)); [[ "$code" == 200 ]] || SWAP_FAILURES=$((SWAP_FAILURES + 1))
  fi
done
wait "$LOADGEN"

END=$(snapshot end)
echo "$END" | tee -a "$OUT_DIR/summary.txt"
/usr/bin/python3 - "$OUT_DIR/soak.json" <<'PY' | tee -a "$OUT_DIR/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
failed = r["completed"] - r["succeeded"]
print(f"requests {r['completed']} succeeded {r['succeeded']} failed {failed} failures {r['failures']} "
      f"throughput {r['throughput_per_s']:.1f}/s p50 {r['latency_ms']['p50']:.1f} ms p99 {r['latency_ms']['p99']:.1f} ms max {r['latency_ms']['max']:.1f} ms")
PY
echo "reloads $SWAPS failed $SWAP_FAILURES" | tee -a "$OUT_DIR/summary.txt"
echo "live after soak: $(curl -s -o /dev/null -w '%{http_code}' "$BASE/v2/health/live")" | tee -a "$OUT_DIR/summary.txt"
echo "results in $OUT_DIR"

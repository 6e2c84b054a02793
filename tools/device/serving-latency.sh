#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root: end-to-end latency of a lone request at concurrency 1, REST with
# binary tensors, one 64x8 window per request against the default model without batching (skab-pump-unbatched of
# benchmarks/serving/make_repository.py), for the published server on the CPU and on the GPU with and without recorded
# forwards (CUDA graphs; SPARSEINFERENCE_CUDA_GRAPHS=0 turns them off), one server at a time on the same cores, the load
# generator on the others. Prints one line per configuration; the load generator's JSON (client percentiles and the
# server's own queue and compute averages) lands in $OUT.
#   CARRY (default .devicecarry) holds server.tar.xz and loadgen.tar.xz (self-contained publishes).
#   CONFIGS (default "cpu cuda-graphs cuda-nographs"), DURATION (s, default 5), WARMUP (s, default 2).
set -uo pipefail
OUT=${OUT:-/tmp/serving-latency-out}
CARRY=${CARRY:-.devicecarry}
CONFIGS=${CONFIGS:-cpu cuda-graphs cuda-nographs}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
SERVER_CPUS=${SERVER_CPUS:-0-3}
LOADGEN_CPUS=${LOADGEN_CPUS:-4-15}
mkdir -p "$OUT"
for pkg in server loadgen; do [ -d "/tmp/$pkg" ] || tar -xJf "$CARRY/$pkg.tar.xz" -C /tmp; done
libdirs=$(find /usr/local /opt /usr/lib -maxdepth 8 \( -name 'libcublas.so.13*' -o -name 'libnvrtc.so.13*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
export SPARSEINFERENCE_CUDA_LIB_DIR="$libdirs" LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" XDG_CACHE_HOME=/tmp/cache DOTNET_gcServer=0
REPO=/tmp/latency-models; rm -rf "$REPO"; mkdir -p "$REPO"
python3 benchmarks/serving/make_repository.py "$PWD/models/skab-pump" "$REPO"
port=8100
for config in $CONFIGS; do
  case $config in
    cpu) device=cpu; graphs=8 ;;
    cuda-graphs) device=cuda; graphs=8 ;;
    cuda-nographs) device=cuda; graphs=0 ;;
    *) echo "unknown configuration $config"; continue ;;
  esac
  rest=$port grpc=$((port + 1)) metrics=$((port + 2)) admin=$((port + 3)); port=$((port + 10))
  (cd /tmp/server && SPARSEINFERENCE_CUDA_GRAPHS=$graphs SparseInference__Device=$device SparseInference__ModelRepository="$REPO" \
    SparseInference__Ports__Rest=$rest SparseInference__Ports__Grpc=$grpc SparseInference__Ports__Metrics=$metrics \
    SparseInference__Ports__Admin=$admin \
    exec taskset -c "$SERVER_CPUS" ./SparseInference.Server > "$OUT/server-$config.log" 2>&1) &
  srv=$!
  for _ in $(seq 1 60); do curl -sf "localhost:$rest/v2/health/ready" >/dev/null && break; sleep 0.5; done
  taskset -c "$LOADGEN_CPUS" /tmp/loadgen/SparseInference.LoadGen --url "http://127.0.0.1:$rest" --grpc-url "http://127.0.0.1:$grpc" \
    -m skab-pump-unbatched --encoding binary --concurrency 1 --duration "$DURATION" --warmup "$WARMUP" --json > "$OUT/latency-$config.json" 2> "$OUT/loadgen-$config.log"
  kill "$srv"; wait "$srv" 2>/dev/null
  python3 - "$config" "$OUT/latency-$config.json" <<'PY'
import json, sys
config, path = sys.argv[1:]
try:
    r = json.load(open(path))["results"][0]
except Exception as e:
    print(f"latency {config:14s}: no result ({e})"); sys.exit(0)
l, s = r["latency_ms"], r.get("server", {})
print(f"latency {config:14s}: {r['throughput_per_s']:8.0f} req/s  p50 {l['p50'] * 1000:6.0f} us  p90 {l['p90'] * 1000:6.0f} us  p99 {l['p99'] * 1000:6.0f} us"
      f"  server queue {s.get('queue_avg_us', float('nan')):5.0f} us  compute {s.get('compute_infer_avg_us', float('nan')):6.1f} us  ({r['succeeded']} ok, failures {r['failures']})")
PY
done

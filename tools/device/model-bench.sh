#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root: the whole-encoder GPU check and benchmark
# (SparseInference.CudaSelfTest --model-only), the PyTorch eager peer on the same weights
# (benchmarks/peers/gpu/model_peer.py), then the published server with SparseInference:Device=cuda
# answering REST infer requests. Logs and results land in $OUT.
#   CARRY (default .devicecarry) holds selftest.tar.xz and server.tar.xz (self-contained publishes),
#   model_peer.py, reference/ (sparse_encoder.py, safetensors_io.py); without the peer or reference
#   copies the repository's own are used.
set -uo pipefail
OUT=${OUT:-/tmp/model-bench-out}
CARRY=${CARRY:-.devicecarry}
ITERS=${ITERS:-30}
RUN=/tmp/model-bench-run
mkdir -p "$OUT" "$RUN"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee "$OUT/nvidia-smi.txt"
date -u | tee -a "$OUT/nvidia-smi.txt"

libdirs=$(find /usr/local /opt /usr/lib -maxdepth 8 \( -name 'libcublas.so.13*' -o -name 'libnvrtc.so.13*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
echo "CUDA library folders: $libdirs"
export SPARSEINFERENCE_CUDA_LIB_DIR="$libdirs"
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_CACHE_HOME=/tmp/cache DOTNET_gcServer=0 PYTHONUNBUFFERED=1
for pkg in selftest server; do
  [ -f "$CARRY/$pkg.tar.xz" ] && tar -xJf "$CARRY/$pkg.tar.xz" -C /tmp
done
SELFTEST=/tmp/selftest/SparseInference.CudaSelfTest
SERVER=/tmp/server/SparseInference.Server

# 1. Model: GPU vs CPU engine, then timings; 2. the PyTorch peer on the same weights.
"$SELFTEST" --model-only --iters "$ITERS" --out "$RUN" 2>&1 | tee "$OUT/model-selftest.log"
st=${PIPESTATUS[0]}
cp "$RUN/model_ours.json" "$OUT/" 2>/dev/null
PEER="$CARRY/model_peer.py"; [ -f "$PEER" ] || PEER=benchmarks/peers/gpu/model_peer.py
REF="$CARRY/reference"; [ -d "$REF" ] || REF=tools/reference
pt=1
if [ -f "$RUN/model_ours.json" ]; then
  timeout 300 python3 "$PEER" --dir "$RUN" --reference "$REF" --json-out "$OUT/model_peer.json" 2>&1 | tee "$OUT/model-peer.log"
  pt=${PIPESTATUS[0]}
fi

# 3. The published server on the GPU: the repository's models plus the benchmark's d_model 512 model.
REPO=/tmp/serve-models; rm -rf "$REPO"; cp -r models "$REPO"
if [ -d "$RUN/model" ]; then mkdir -p "$REPO/gpu-encoder/1" && cp "$RUN/model/"* "$REPO/gpu-encoder/1/"; fi
"$SERVER" --SparseInference:Device=cuda --SparseInference:ModelRepository="$REPO" > "$OUT/server.log" 2>&1 &
srv=$!
for _ in $(seq 1 60); do curl -sf localhost:8000/v2/health/ready >/dev/null && break; sleep 1; done
python3 - <<'PY' > /tmp/req.json
import json, math
T, C = 256, 8
print(json.dumps({"id": "gpu-1", "inputs": [{"name": "input", "shape": [1, T, C], "datatype": "FP32",
                  "data": [math.sin(0.3 * t + c) for t in range(T) for c in range(C)]}]}))
PY
sv=0
for model in skab-pump gpu-encoder; do
  echo "== POST /v2/models/$model/infer" >> "$OUT/server-responses.txt"
  curl -s -m 60 -w '\nHTTP %{http_code} in %{time_total} s\n' -X POST "localhost:8000/v2/models/$model/infer" \
    -H 'content-type: application/json' --data @/tmp/req.json > /tmp/resp.txt
  tail -c 300 /tmp/resp.txt >> "$OUT/server-responses.txt"; head -c 600 /tmp/resp.txt >> "$OUT/server-responses.txt"; echo >> "$OUT/server-responses.txt"
  grep -q '^HTTP 200' /tmp/resp.txt || sv=1
done
kill "$srv"; wait "$srv" 2>/dev/null
cat "$OUT/server-responses.txt"
grep -E "Compute device|CUDA|onto|runs on the CPU|Ready" "$OUT/server.log"
echo "self-test exit code: $st; peer exit code: $pt; server requests: $([ $sv = 0 ] && echo ok || echo FAILED)"
[ "$st" = 0 ] && [ "$pt" = 0 ] && [ "$sv" = 0 ]

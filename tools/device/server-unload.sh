#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root: the published server with SparseInference:Device=cuda,
# a d_model 512 model (written by SparseInference.CudaSelfTest --model-only) loaded, served and unloaded through
# the repository API for several cycles, reading the device memory gauges from the metrics port after each step.
# Passes when the driver's used memory after every unload is back within TOLERANCE_MIB of the first unload's figure
# (the first cycle warms kernel modules and library workspaces), the weights gauge is non-zero while the model is
# loaded and zero after the unload, and every infer answers 200.
#   CARRY (default .devicecarry) holds selftest.tar.xz and server.tar.xz; results land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/server-unload-out}
CARRY=${CARRY:-.devicecarry}
CYCLES=${CYCLES:-6}
TOLERANCE_MIB=${TOLERANCE_MIB:-8}
RUN=/tmp/server-unload-run
mkdir -p "$OUT" "$RUN"
libdirs=$(find /usr/local /opt /usr/lib -maxdepth 8 \( -name 'libcublas.so.13*' -o -name 'libnvrtc.so.13*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
export SPARSEINFERENCE_CUDA_LIB_DIR="$libdirs" LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_CACHE_HOME=/tmp/cache DOTNET_gcServer=0
for pkg in selftest server; do tar -xJf "$CARRY/$pkg.tar.xz" -C /tmp; done

/tmp/selftest/SparseInference.CudaSelfTest --model-only --iters 1 --out "$RUN" > "$OUT/selftest.log" 2>&1
REPO=/tmp/unload-models; rm -rf "$REPO"; mkdir -p "$REPO/gpu-encoder/1"; cp "$RUN/model/"* "$REPO/gpu-encoder/1/"
# Model control (load/unload) is served on the admin port with the admin token only.
ADMIN_TOKEN=${ADMIN_TOKEN:-server-unload-admin-token}
/tmp/server/SparseInference.Server --SparseInference:Device=cuda --SparseInference:ModelRepository="$REPO" --SparseInference:Admin:Token="$ADMIN_TOKEN" > "$OUT/server.log" 2>&1 &
srv=$!
for _ in $(seq 1 60); do curl -sf localhost:8000/v2/health/ready >/dev/null && break; sleep 1; done
python3 - <<'PY' > /tmp/unload-req.json
import json, math
T, C = 512, 8
print(json.dumps({"inputs": [{"name": "input", "shape": [2, T, C], "datatype": "FP32",
                  "data": [math.sin(0.3 * t + c + b) for b in range(2) for t in range(T) for c in range(C)]}]}))
PY
used() { curl -s localhost:8002/metrics | awk '/^sparseinference_device_memory_used_bytes\{device="cuda:0"\}/ {printf "%d", $2/1048576}'; }
weights() { curl -s localhost:8002/metrics | awk '/^sparseinference_device_memory_allocated_bytes\{device="cuda:0",use="weights"\}/ {printf "%d", $2/1048576}'; }
status=0
: > "$OUT/cycles.txt"
for cycle in $(seq 1 "$CYCLES"); do
  [ "$cycle" = 1 ] || curl -s -o /dev/null -w '' -X POST -H "Authorization: Bearer $ADMIN_TOKEN" localhost:8003/v2/repository/models/gpu-encoder/load
  codes=""
  for _ in 1 2 3; do
    codes="$codes $(curl -s -o /dev/null -w '%{http_code}' -X POST localhost:8000/v2/models/gpu-encoder/infer -H 'content-type: application/json' --data @/tmp/unload-req.json)"
  done
  loaded=$(used); loaded_weights=$(weights)
  curl -s -o /dev/null -X POST -H "Authorization: Bearer $ADMIN_TOKEN" localhost:8003/v2/repository/models/gpu-encoder/unload
  sleep 1
  after=$(used); after_weights=$(weights)
  echo "cycle $cycle: infer$codes; used ${loaded} MiB loaded (weights ${loaded_weights:-?} MiB), ${after} MiB after unload (weights ${after_weights:-?} MiB)" | tee -a "$OUT/cycles.txt"
  # The model's Linear weights are counted as weights while it is loaded, and none are left after the unload.
  [ "${loaded_weights:-0}" -gt 0 ] && [ "${after_weights:-1}" = 0 ] || status=1
  for code in $codes; do [ "$code" = 200 ] || status=1; done
  [ "$cycle" = 1 ] && first=$after
  if [ "$cycle" -gt 1 ] && [ $(( after > first ? after - first : first - after )) -gt "$TOLERANCE_MIB" ]; then status=1; fi
done
kill "$srv"; wait "$srv" 2>/dev/null
grep -E "Compute device|onto|Unloaded|Error" "$OUT/server.log" | cut -c1-300 | head -20
echo "server unload cycles: $([ $status = 0 ] && echo PASS || echo FAIL) (first unload ${first} MiB used, tolerance ${TOLERANCE_MIB} MiB)"
exit $status

#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root: the CUDA self-test and attention benchmark
# (a self-contained publish of tools/SparseInference.CudaSelfTest), then the PyTorch peer on the
# same shapes and layouts. Logs and results land in $OUT.
#   CARRY: folder holding selftest/ (the publish) and, optionally, attention_peer.py (default .devicecarry);
#   without it the peer is taken from benchmarks/peers/gpu/.
set -uo pipefail
OUT=${OUT:-/tmp/cuda-bench-out}
CARRY=${CARRY:-.devicecarry}
RUN=/tmp/cuda-bench-run
mkdir -p "$OUT" "$RUN"

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee "$OUT/nvidia-smi.txt"

# cuBLAS and NVRTC of CUDA 13 (toolkit or the Python wheels), for the library resolver.
libdirs=$(find /usr/local /opt /usr/lib -maxdepth 8 \( -name 'libcublas.so.13*' -o -name 'libnvrtc.so.13*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
echo "CUDA library folders: $libdirs"
export SPARSEINFERENCE_CUDA_LIB_DIR="$libdirs"
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_CACHE_HOME=/tmp/cache
export DOTNET_gcServer=0

chmod +x "$CARRY/selftest/SparseInference.CudaSelfTest"
"$CARRY/selftest/SparseInference.CudaSelfTest" --out "$RUN" "$@" 2>&1 | tee "$OUT/selftest.log"
st=${PIPESTATUS[0]}
cp "$RUN/ours.json" "$OUT/" 2>/dev/null
PEER="$CARRY/attention_peer.py"
[ -f "$PEER" ] || PEER=benchmarks/peers/gpu/attention_peer.py
if [ -f "$RUN/ours.json" ]; then
  PYTHONUNBUFFERED=1 python3 "$PEER" --dir "$RUN" --json-out "$OUT/peer.json" 2>&1 | tee "$OUT/peer.log"
fi
echo "self-test exit code: $st"
exit "$st"

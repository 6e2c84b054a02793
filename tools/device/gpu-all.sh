#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, everything the CUDA backend is checked and timed with:
#   tests      the CUDA test executable (xunit v3, self-contained: GPU tests included, no SDK needed)
#   attention  cuda-bench.sh: self-test of every op and of the IComputeBackend contract against the CPU,
#              attention timings and the PyTorch attention peer (SDPA / FlexAttention)
#   model      model-bench.sh: the whole encoder against the CPU engine and PyTorch eager, the server on the GPU
#   serving    the default model with the server's settings: recorded forwards (CUDA graphs) and fused small layers
#              against the op-by-op forward and the CPU engine (self-test --serving: checks, lone-window and batch timings),
#              then serving-latency.sh: REST latency at concurrency 1, server on the CPU and on the GPU with and without graphs
# Usage: bash gpu-all.sh [tests] [serving] [attention] [model]   (no argument: all four)
# CARRY (default .devicecarry) holds gputests.tar.xz, selftest.tar.xz, server.tar.xz, loadgen.tar.xz, cuda-bench.sh,
# model-bench.sh, serving-latency.sh, attention_peer.py, model_peer.py. Every log goes into $OUT/results-<parts>.tar.gz;
# the summaries are printed last.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-all-out}
CARRY=$(cd "${CARRY:-.devicecarry}" && pwd)
parts=${*:-tests serving attention model}
RES=/tmp/gpu-all-results-$(echo $parts | tr ' ' '-')
mkdir -p "$OUT" "$RES"
date -u | tee "$RES/date.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee -a "$RES/date.txt"
libdirs=$(find /usr/local /opt /usr/lib -maxdepth 8 \( -name 'libcublas.so.13*' -o -name 'libnvrtc.so.13*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
export SPARSEINFERENCE_CUDA_LIB_DIR="$libdirs" LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_CACHE_HOME=/tmp/cache DOTNET_gcServer=0 PYTHONUNBUFFERED=1
status=0
for part in $parts; do
  case $part in
    tests)
      mkdir -p "$RES/tests"
      tar -xJf "$CARRY/gputests.tar.xz" -C /tmp
      timeout 180 /tmp/gputests/SparseInference.Tensors.Cuda.Tests 2>&1 | sed 's/\x1b\[[0-9;]*m//g' > "$RES/tests/gpu-tests.log"
      rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || status=1
      echo "== tests (exit $rc)"; grep -E "\[FAIL\]|\[SKIP\]|Total:" "$RES/tests/gpu-tests.log" ;;
    serving)
      mkdir -p "$RES/serving"
      [ -d /tmp/selftest ] || tar -xJf "$CARRY/selftest.tar.xz" -C /tmp
      timeout 150 /tmp/selftest/SparseInference.CudaSelfTest --serving models/skab-pump/1 --iters 2000 --out "$RES/serving" > "$RES/serving/serving-selftest.log" 2>&1
      rc=$?; [ "$rc" = 0 ] || status=1
      echo "== serving self-test (exit $rc)"; grep -E "FAIL|serving checks|serving bench|op breakdown|^  " "$RES/serving/serving-selftest.log" | head -60
      OUT="$RES/serving" CARRY="$CARRY" timeout 100 bash "$CARRY/serving-latency.sh" > "$RES/serving/latency.log" 2>&1
      rc=$?; [ "$rc" = 0 ] || status=1
      echo "== serving latency (exit $rc)"; cat "$RES/serving/latency.log" | tail -8 ;;
    attention)
      mkdir -p "$RES/attention"
      tar -xJf "$CARRY/selftest.tar.xz" -C "$CARRY"
      OUT="$RES/attention" CARRY="$CARRY" timeout 300 bash "$CARRY/cuda-bench.sh" --iters 30 > "$RES/attention/run.log" 2>&1
      rc=$?; [ "$rc" = 0 ] || status=1
      echo "== attention (exit $rc)"; grep -E "^FAIL|^checks" "$RES/attention/selftest.log"; cat "$RES/attention/peer.log" 2>/dev/null | tail -15 ;;
    model)
      mkdir -p "$RES/model"
      OUT="$RES/model" CARRY="$CARRY" timeout 300 bash "$CARRY/model-bench.sh" > "$RES/model/run.log" 2>&1
      rc=$?; [ "$rc" = 0 ] || status=1
      echo "== model (exit $rc)"; grep -E "FAIL|model checks|unload|model bench" "$RES/model/model-selftest.log"; tail -16 "$RES/model/model-peer.log" 2>/dev/null
      tail -3 "$RES/model/run.log" ;;
  esac
done
tar -czf "$OUT/results-$(echo $parts | tr ' ' '-').tar.gz" -C "$RES" .
exit $status

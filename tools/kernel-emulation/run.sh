#!/usr/bin/env bash
# Runs a CUDA kernel source on the CPU, without a GPU or NVRTC: the kernel text as the backend splices it (includes in
# place), compiled by g++ against emu_shim.h, which runs each CTA as one std::thread per CUDA thread with a barrier for
# __syncthreads and an exchange buffer for warp shuffles. Checks fused_layer.cu against a double-precision encoder layer
# (dense and window layouts, a ragged batch, FP32 and BF16 residual streams). Needs g++ with C++20 (std::barrier).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KERNELS=$HERE/../../src/SparseInference.Tensors.Cuda/Kernels
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 - "$KERNELS" "$WORK/fused_layer.emu.inc" <<'PY'
import re, sys
kernels, out = sys.argv[1:]
def splice(name):
    lines = []
    for line in open(f"{kernels}/{name}", encoding="utf-8").read().split("\n"):
        m = re.match(r'#include "(.*\.cuh)"', line.strip())
        lines.append(splice(m.group(1)) if m else line)
    return "\n".join(lines)
s = splice("fused_layer.cu").replace('extern "C"', "")
# The PTX rounding instruction becomes the same round-to-nearest-even on the host.
s = s.replace('asm("cvt.rn.bf16.f32 %0, %1;\\n" : "=h"(r) : "f"(f));', "r = emu_bf16(f);")
open(out, "w", encoding="utf-8").write(s)
PY
cp "$HERE/emu_shim.h" "$HERE/fused_layer_check.cpp" "$WORK/"
status=0
for defs in "-DD=32 -DH=4 -DDFF=64 -DX_BF16=0" "-DD=32 -DH=4 -DDFF=64 -DX_BF16=1" "-DD=64 -DH=2 -DDFF=96 -DX_BF16=0"; do
  g++ -std=c++20 -O1 -w -pthread $defs -I "$WORK" "$WORK/fused_layer_check.cpp" -o "$WORK/check"
  for layout in dense window; do
    line=$("$WORK/check" $([ $layout = window ] && echo window) | tr '\n' ' ')
    echo "$defs $layout: $line"
    # FP32 residual: FP32 arithmetic (≤ 1e-5); BF16 residual: one BF16 rounding of the stored rows (≤ 1e-2).
    tol=$([[ $defs == *X_BF16=1* ]] && echo 1e-2 || echo 1e-5)
    python3 -c "import re,sys; e=[float(x) for x in re.findall(r'err ([0-9.e+-]+)', sys.argv[1])]; sys.exit(0 if e and max(e) <= float(sys.argv[2]) else 1)" "$line" "$tol" || status=1
  done
done
echo "fused_layer emulation: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status

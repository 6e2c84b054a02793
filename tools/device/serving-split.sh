#!/usr/bin/env bash
# Runs on a machine with more cores than the server needs (the GPU machine's 16-core host), from the repository
# root: the CPU batching benchmark with the server confined to SERVER_CPUS and the load generator to LOADGEN_CPUS,
# so that the client's own CPU no longer competes with the server's, plus the engine-only cost of one window alone
# and in batches on the server's cores (the ceiling that batching can reach).
# SERVER_DEVICE=cuda serves the models from the GPU instead (the CUDA libraries are looked up as gpu-all.sh does) and
# skips the engine-only CPU benchmark. The batching part compares unbatched serving, the work-conserving policy and
# Triton's delay policy (run.sh); DURATION, WARMUP, ROUNDS, CONCURRENCY and MODES pass through to it.
#   CARRY holds server.tar.xz, loadgen.tar.xz and bench.tar.xz (self-contained linux-x64 publishes); results in $OUT.
set -euo pipefail
OUT=${OUT:-/tmp/serving-split-out}
CARRY=${CARRY:-.devicecarry/serving}
SERVER_CPUS=${SERVER_CPUS:-0,1}
LOADGEN_CPUS=${LOADGEN_CPUS:-2-15}
SERVER_DEVICE=${SERVER_DEVICE:-cpu}
mkdir -p "$OUT"
for pkg in server loadgen bench; do [ -f "$CARRY/$pkg.tar.xz" ] && tar -xJf "$CARRY/$pkg.tar.xz" -C /tmp; done
if [ "$SERVER_DEVICE" != cpu ]; then
  libdirs=$(find /usr/local /opt /usr/lib -maxdepth 8 \( -name 'libcublas.so.13*' -o -name 'libnvrtc.so.13*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
  export SPARSEINFERENCE_CUDA_LIB_DIR="$libdirs" LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" XDG_CACHE_HOME=/tmp/cache
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$OUT/machine.txt"
fi

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  lscpu | sed -n 's/^\(Model name\|CPU(s)\|Thread(s) per core\|Flags\):  *//p' | cut -c1-400
  uptime
} >> "$OUT/machine.txt"

# Engine only, one process on the server's cores: a window alone and in batches, with the server's thread count
# and with one thread (which isolates per-forward overhead from the use of the second core).
n_server=$(taskset -c "$SERVER_CPUS" nproc)
[ "$SERVER_DEVICE" != cpu ] || for threads in "$n_server" 1; do
  taskset -c "$SERVER_CPUS" /tmp/bench/SparseInference.Benchmarks windows --batches 1,2,4,8,16,32 --threads "$threads" \
    > "$OUT/windows-threads$threads.txt" 2>&1
done

SparseInference__Device="$SERVER_DEVICE" SKIP_BUILD=1 SKIP_SUMMARY=1 PY=python3 RESULTS="$OUT/serving" PARTS="${PARTS:-batching overhead}" \
SERVER_BIN=/tmp/server/SparseInference.Server LOADGEN_BIN=/tmp/loadgen/SparseInference.LoadGen \
SERVER_CPUS="$SERVER_CPUS" LOADGEN_CPUS="$LOADGEN_CPUS" \
  bash benchmarks/serving/run.sh > "$OUT/serving.log" 2>&1
tar -C "$OUT" -czf "$OUT/serving.tar.gz" serving && rm -rf "$OUT/serving"

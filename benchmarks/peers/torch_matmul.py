#!/usr/bin/python3
"""PyTorch peer for the matmul comparison: times float32 matmuls and prints one JSON object per case.

Usage: /usr/bin/python3 torch_matmul.py --threads 2 --min-seconds 1.0 CASE [CASE ...]
CASE is  gemm:M:N:K  (C = A·B, A [M,K], B [K,N])  or  linear:M:N:K  (y = x·Wᵀ + b, x [M,K], W [N,K]).
"""
import argparse
import json
import re
import statistics
import sys

import torch

from peer_timing import time_repeatedly


def run_case(spec, min_seconds, min_reps):
    kind, m, n, k = spec.split(":")
    m, n, k = int(m), int(n), int(k)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(m, k, generator=g) * 2 - 1
    if kind == "gemm":
        b = torch.rand(k, n, generator=g) * 2 - 1
        out = torch.empty(m, n)
        fn = lambda: torch.matmul(a, b, out=out)
    elif kind == "linear":
        w = torch.rand(n, k, generator=g) * 2 - 1
        bias = torch.rand(n, generator=g) * 2 - 1
        fn = lambda: torch.nn.functional.linear(a, w, bias)
    else:
        raise SystemExit(f"unknown case kind {kind!r}")
    flops = 2.0 * m * n * k
    times, cpu = time_repeatedly(fn, min_seconds, min_reps)
    return {
        "case": spec,
        "reps": len(times),
        # Work per CPU-second of this process (all its threads): less sensitive to other load on the machine.
        "cpu_gflops": flops * len(times) / cpu / 1e9,
        "median_gflops": flops / statistics.median(times) / 1e9,
        "best_gflops": flops / min(times) / 1e9,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--min-reps", type=int, default=5)
    p.add_argument("cases", nargs="+")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    blas = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "blas_info": blas.group(1) if blas else "unknown"}), flush=True)
    for spec in args.cases:
        print(json.dumps(run_case(spec, args.min_seconds, args.min_reps)), flush=True)


if __name__ == "__main__":
    sys.exit(main())

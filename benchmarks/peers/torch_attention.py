#!/usr/bin/python3
"""PyTorch peer for the attention comparison: dense softmax attention on [B, H, T, d] float32 tensors,
softmax(q·kᵀ/√d)·v with the T×T scores materialised (PyTorch 1.13 has no fused attention on CPU).
Prints one JSON object per case.

Usage: /usr/bin/python3 torch_attention.py --threads 2 --min-seconds 1.0 B:H:T:D [B:H:T:D ...]
"""
import argparse
import json
import math
import statistics
import sys

import torch

from peer_timing import time_repeatedly


def run_case(spec, min_seconds, min_reps):
    b, h, t, d = (int(x) for x in spec.split(":"))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.rand(b, h, t, d, generator=g) * 2 - 1 for _ in range(3))
    scale = 1.0 / math.sqrt(d)

    def fn():
        with torch.no_grad():
            return torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1).matmul(v)

    times, cpu = time_repeatedly(fn, min_seconds, min_reps)
    return {"case": spec, "reps": len(times), "median_ms": statistics.median(times) * 1e3, "best_ms": min(times) * 1e3,
            "cpu_ms_per_rep": cpu / len(times) * 1e3}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--min-reps", type=int, default=5)
    p.add_argument("cases", nargs="+")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for spec in args.cases:
        print(json.dumps(run_case(spec, args.min_seconds, args.min_reps)), flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Times the conventional PyTorch forward (dense attention, materialised [B, H, T, T] scores,
float32) of a model directory, as the peer of the engine's benchmarks. Prints one JSON object.

  /usr/bin/python3 tools/reference/bench_forward.py --model DIR --batch 8 --time 256 --threads 2
  /usr/bin/python3 tools/reference/bench_forward.py --batch 1 --time 128     # random 4x256 model

Without --model, a random model of 4 layers, d_model 256, 8 heads, d_ff 1024, 8 input channels
is built in memory (the same as `export.py --random` writes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import load_model  # noqa: E402
from sparse_encoder import AttentionSpec, EncoderConfig, random_model  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model directory (config.json + model.safetensors)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--time", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.batch < 1 or args.time < 1 or args.iters < 1 or args.threads < 1:
        p.error("--batch, --time, --iters and --threads must be >= 1")
    torch.set_num_threads(args.threads)

    if args.model:
        model = load_model(args.model, torch.float32)
    else:
        cfg = EncoderConfig(input_channels=8, d_model=256, n_heads=8, n_layers=4, d_ff=1024,
                            max_seq_len=max(1024, args.time), output_dim=8,
                            attention=AttentionSpec("dense", 0.0, 16, 1, 0))
        model = random_model(cfg, seed=args.seed).eval()
    cfg = model.cfg
    if args.time > cfg.max_seq_len:
        p.error(f"--time {args.time} exceeds the model's max_seq_len {cfg.max_seq_len}")

    gen = torch.Generator().manual_seed(args.seed)
    if cfg.input_kind == "continuous":
        x = torch.randn(args.batch, args.time, cfg.input_channels, generator=gen)
    else:
        x = torch.randint(0, cfg.vocab_size, (args.batch, args.time), generator=gen)

    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            out = model.forward_dense_fast(x)
            t1 = time.perf_counter()
            if i >= args.warmup:
                times.append((t1 - t0) * 1e3)
    times.sort()
    median = statistics.median(times)
    print(json.dumps({
        "peer": "pytorch-dense-materialised",
        "torch_version": torch.__version__,
        "threads": args.threads,
        "batch": args.batch, "time": args.time,
        "d_model": cfg.d_model, "n_heads": cfg.n_heads, "n_layers": cfg.n_layers, "d_ff": cfg.d_ff,
        "iters": args.iters, "warmup": args.warmup,
        "median_ms": round(median, 4),
        "mean_ms": round(statistics.fmean(times), 4),
        "min_ms": round(times[0], 4),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 4),
        "sequences_per_s": round(args.batch / (median / 1e3), 2),
        "output_shape": list(out.shape),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

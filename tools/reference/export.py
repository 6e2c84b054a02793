"""Writes and reads model directories (config.json + model.safetensors) per docs/model-format.md.

Examples:
  /usr/bin/python3 tools/reference/export.py --random --out /tmp/bench-model \\
      --input-channels 8 --d-model 256 --n-heads 8 --n-layers 4 --d-ff 1024 --max-seq-len 1024
  /usr/bin/python3 tools/reference/export.py --check /tmp/bench-model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402
from sparse_encoder import AttentionSpec, EncoderConfig, SparseEncoder, random_model  # noqa: E402

WEIGHT_DTYPES = ("F32", "F16", "BF16")


def state_arrays(model: SparseEncoder) -> dict:
    return {name: t.detach().to(torch.float32).cpu().numpy() for name, t in model.state_dict().items()}


def save_model(model: SparseEncoder, out_dir: str, dtype: str = "F32",
               metadata: Optional[dict] = None) -> None:
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"dtype: expected one of {WEIGHT_DTYPES}, got {dtype!r}")
    os.makedirs(out_dir, exist_ok=True)
    cfg = model.cfg.to_dict()
    if metadata:
        cfg["metadata"] = {**cfg.get("metadata", {}), **metadata}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    tensors = {name: (arr, dtype) for name, arr in state_arrays(model).items()}
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors,
                      metadata={"format": "pt", "producer": "sparseinference-reference"})


def load_model(model_dir: str, dtype: torch.dtype = torch.float32) -> SparseEncoder:
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = EncoderConfig.from_dict(json.load(f))
    model = SparseEncoder(cfg)
    tensors, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{model_dir}: tensors missing {missing}, unexpected {extra}")
    state = {}
    for name, (arr, _) in tensors.items():
        if tuple(arr.shape) != tuple(expected[name].shape):
            raise ValueError(f"{model_dir}: tensor {name}: expected shape {tuple(expected[name].shape)}, "
                             f"got {tuple(arr.shape)}")
        state[name] = torch.from_numpy(np.asarray(arr, dtype=np.float32))
    model.load_state_dict(state)
    return model.to(dtype).eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--random", action="store_true", help="export a model with random weights")
    p.add_argument("--check", metavar="DIR", help="load DIR and run one forward as a sanity check")
    p.add_argument("--out", help="output model directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="F32", choices=WEIGHT_DTYPES)
    p.add_argument("--input-kind", default="continuous", choices=("continuous", "tokens"))
    p.add_argument("--input-channels", type=int, default=8)
    p.add_argument("--vocab-size", type=int, default=0)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-heads", type=int, default=8)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--positional", default="sinusoidal", choices=("sinusoidal", "learned"))
    p.add_argument("--head", default="reconstruction", choices=("reconstruction", "regression", "classification"))
    p.add_argument("--output-dim", type=int, default=None, help="default: input_channels")
    p.add_argument("--gated", action="store_true")
    p.add_argument("--pattern", default="dense")
    p.add_argument("--sparsity", type=float, default=0.0)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--global-blocks", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    if args.check:
        model = load_model(args.check)
        cfg = model.cfg
        T = min(cfg.max_seq_len, 32)
        x = torch.randn(2, T, cfg.input_channels) if cfg.input_kind == "continuous" else \
            torch.randint(0, cfg.vocab_size, (2, T))
        out, computed, dense = model(x, [T, T // 2])
        print(json.dumps({"output_shape": list(out.shape), "computed_pairs": computed,
                          "dense_pairs": dense, "finite": bool(torch.isfinite(out).all())}))
        return 0

    if not args.random or not args.out:
        p.error("use --random --out DIR (or --check DIR)")
    cfg = EncoderConfig(
        input_kind=args.input_kind,
        input_channels=args.input_channels if args.input_kind == "continuous" else 0,
        vocab_size=args.vocab_size, d_model=args.d_model, n_heads=args.n_heads,
        n_layers=args.n_layers, d_ff=args.d_ff, max_seq_len=args.max_seq_len,
        positional=args.positional, head=args.head,
        output_dim=args.output_dim if args.output_dim is not None else args.input_channels,
        gated=args.gated,
        attention=AttentionSpec(args.pattern, args.sparsity, args.block_size, args.global_blocks, 0),
        metadata={"note": "random weights, for benchmarks and tests", "seed": args.seed})
    model = random_model(cfg, seed=args.seed)
    save_model(model, args.out, dtype=args.dtype)
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(json.dumps({"out": args.out, "parameters": sum(p.numel() for p in model.parameters()),
                      "safetensors_bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

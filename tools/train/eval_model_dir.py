"""Evaluates an exported model directory on SKAB exactly as the service would run it: the weights
read back from model.safetensors, the threshold from config.json (or --threshold), the detector
from its metadata (window_length, score_positions). Prints one JSON object with F1/FAR/MAR per group.

  /usr/bin/python3 tools/train/eval_model_dir.py --model models/skab-pump/1
  /usr/bin/python3 tools/train/eval_model_dir.py --model models/skab-pump/1 --pattern block-topk --sparsity 0.75 --threshold 0.512
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from export import load_model  # noqa: E402
from skab_data import load_experiments  # noqa: E402
from skab_model import detect, score_matrices  # noqa: E402
from sparse_encoder import AttentionSpec  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--pattern", help="default: the model's attention.pattern")
    p.add_argument("--sparsity", type=float)
    p.add_argument("--threshold", type=float, help="default: the model's anomaly_threshold")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    model = load_model(args.model)
    cfg = model.cfg
    spec = AttentionSpec(**{**cfg.attention.to_dict(),
                            **({"pattern": args.pattern} if args.pattern else {}),
                            **({"sparsity": args.sparsity} if args.sparsity is not None else {})})
    threshold = args.threshold if args.threshold is not None else cfg.anomaly_threshold
    if threshold is None:
        p.error("the model has no anomaly_threshold: pass --threshold")
    W = int(cfg.metadata["window_length"])
    positions = int(cfg.metadata["score_positions"])
    exps = load_experiments()
    result = detect(score_matrices(model, exps, W, spec), exps, 0.99, 1.0, positions, fixed_ucl=threshold)
    print(json.dumps({"model": args.model, "attention": spec.to_dict(), "threshold": threshold,
                      "density": result["density"], "groups": result["groups"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluates an exported model directory on SKAB as the service runs it: the weights read back from
model.safetensors, every file onboarded on its first 400 rows with the rule of config.json
(metadata.line_baseline; docs/baselines.md); or, with --no-baseline, inputs standardized per file and one
threshold (config.json's anomaly_threshold, or --threshold) against the mean plain score of the last 16
positions. Prints one JSON object with F1/FAR/MAR per group.

  /usr/bin/python3 tools/train/eval_model_dir.py --model models/skab-pump/1
  /usr/bin/python3 tools/train/eval_model_dir.py --model models/skab-pump/1 --pattern block-topk --sparsity 0.75
  /usr/bin/python3 tools/train/eval_model_dir.py --model models/skab-pump/1 --no-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from baseline_fixture import rule_settings  # noqa: E402
from export import load_model  # noqa: E402
from skab_baseline import evaluate, evaluate_flags, model_points, plain_points  # noqa: E402
from skab_data import ONBOARD_ROWS, load_experiments  # noqa: E402
from skab_model import line_residuals  # noqa: E402
from sparse_encoder import AttentionSpec  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--pattern", help="default: the model's attention.pattern")
    p.add_argument("--sparsity", type=float)
    p.add_argument("--groups", default="valve1,valve2",
                   help="experiment folders under the SKAB folder, comma-separated; each file is one line")
    p.add_argument("--no-baseline", action="store_true", help="one threshold for every file, no line baselines")
    p.add_argument("--threshold", type=float, help="with --no-baseline; default: the model's anomaly_threshold")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    model = load_model(args.model)
    cfg = model.cfg
    spec = AttentionSpec(**{**cfg.attention.to_dict(),
                            **({"pattern": args.pattern} if args.pattern else {}),
                            **({"sparsity": args.sparsity} if args.sparsity is not None else {})})
    W = int(cfg.metadata["window_length"])
    exps = load_experiments(groups=tuple(args.groups.split(",")))
    R, density = line_residuals(model, exps, W, spec)
    n_on = ONBOARD_ROWS - (W - 1)
    if args.no_baseline:
        threshold = args.threshold if args.threshold is not None else cfg.anomaly_threshold
        if threshold is None:
            p.error("the model has no anomaly_threshold: pass --threshold")
        groups = evaluate_flags(exps, lambda i: plain_points(R[i][n_on:]) > np.float32(threshold))
        out = {"threshold": threshold}
    else:
        s = rule_settings(cfg.metadata)
        groups = evaluate(exps, lambda i: [model_points(R[i], W, s)], s)
        out = {"line_baseline": s.to_dict()}
    print(json.dumps({"model": args.model, "attention": spec.to_dict(), **out, "density": density, "groups": groups}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

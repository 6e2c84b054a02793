"""Writes the numbers the service's line-baseline tests compare with: one SKAB line onboarded on its first
rows with an exported model, per serving variant (skab_baseline.fit_line), and the calibrated scores and
flags of a few windows of raw readings after the onboarding stretch. Only derived numbers are written
(no SKAB rows); the tests read the same SKAB file themselves.

  /usr/bin/python3 tools/train/baseline_fixture.py            # models/skab-pump, valve1/0
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
from export import load_model  # noqa: E402
from skab_baseline import ScoreSettings, evaluate, fit_line, hotelling_points, pca_points, timestep_scores  # noqa: E402
from skab_data import ONBOARD_ROWS, load_experiments, standardize, windows  # noqa: E402
from skab_model import residuals  # noqa: E402
from sparse_encoder import AttentionSpec  # noqa: E402

# windows ending at these rows of the line are scored after onboarding (normal rows and anomalous ones)
TEST_ENDS = (ONBOARD_ROWS, 520, 700, 900, 1050)


def rule_settings(meta: dict) -> ScoreSettings:
    r = meta["line_baseline"]
    return ScoreSettings(r["positions"], r["false_alarm_rate"], r["margin"], r["residual_std_floor"])


def trailing_flags(scores: np.ndarray, positions: int, threshold: float) -> list:
    """flag[t] = mean(scores[max(0, t - positions + 1) .. t]) > threshold, per window."""
    out = []
    for row in scores:
        out.append([bool(row[max(0, t - positions + 1):t + 1].mean() > threshold) for t in range(len(row))])
    return out


def fixture(model_dir: str, line_id: str) -> dict:
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    meta = cfg["metadata"]
    s = rule_settings(meta)
    W = int(meta["line_baseline"]["window"])
    group, name = line_id.split("/")
    line = next(e for e in load_experiments(groups=(group,)) if e.name == f"{name}.csv")
    serving_path = os.path.join(os.path.dirname(model_dir), "serving.json")
    variants = json.load(open(serving_path))["variants"] if os.path.exists(serving_path) else [
        {"name": "default", **cfg["attention"]}]
    model = load_model(model_dir)
    onboarding = line.raw[:ONBOARD_ROWS]
    mean, std = onboarding.mean(0), onboarding.std(0)
    z = standardize(line.raw, mean, std)
    ends = np.array([t for t in TEST_ENDS if t < len(line.raw)])
    test_windows = z[ends[:, None] + np.arange(-W + 1, 1)[None, :]]
    out = {"model": os.path.basename(os.path.dirname(model_dir)), "version": os.path.basename(model_dir),
           "line": line.id, "onboarding_rows": ONBOARD_ROWS, "window": W, "positions": s.positions,
           "input_mean": mean.tolist(), "input_std": std.tolist(), "test_ends": ends.tolist(),
           "test_labels": line.anomaly[ends].tolist(), "variants": {}}
    for v in variants:
        spec = AttentionSpec(v.get("pattern", "dense"), v.get("sparsity", 0.0), cfg["attention"]["block_size"],
                             cfg["attention"]["global_blocks"], cfg["attention"]["seed"])
        on_res, _ = residuals(model, windows(z[:ONBOARD_ROWS], W, W - 1, ONBOARD_ROWS), spec)
        b = fit_line(onboarding, on_res, s)
        te_res, _ = residuals(model, test_windows, spec)
        scores = timestep_scores(te_res, b["residual_mean"], b["residual_std"]).astype(np.float32)
        out["variants"][v["name"]] = {
            "pattern": spec.pattern, "sparsity": spec.sparsity,
            "residual_mean": b["residual_mean"].tolist(), "residual_std": b["residual_std"].tolist(),
            "onboarding_quantile": b["onboarding_quantile"], "threshold": b["threshold"],
            "scores": scores.astype(np.float64).tolist(),
            "flags": trailing_flags(scores.astype(np.float64), s.positions, b["threshold"])}
    # the classical detectors with the model's rule, on the line's test part (the evaluator computes them too)
    out["classical"] = {}
    for detector, fn in (("hotelling-t2", hotelling_points), ("pca-t2q", pca_points)):
        m = evaluate([line], lambda i: fn(line, W, s), s)[line.group]
        out["classical"][detector] = {k: m[k] for k in ("tp", "fp", "fn", "tn")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(REPO, "models", "skab-pump", "1"))
    p.add_argument("--line", default="valve1/0")
    p.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "baselines", "skab-pump-valve1-0.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(fixture(args.model, args.line), f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

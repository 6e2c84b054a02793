"""Trains the SKAB pump anomaly models, evaluates them with the SKAB leaderboard protocol and exports
them as model directories.

  /usr/bin/python3 tools/train/train_skab.py                 # full run (about 10 minutes, 1 thread)
  /usr/bin/python3 tools/train/train_skab.py --epochs 1      # quick smoke run

Protocol (per experiment file of valve1/ and valve2/): rows [0, 400) are the training part, on which
a StandardScaler is fitted; rows [400, N) are the test part. One shared model is trained on the
training windows of all files. The per-timestep score is the mean over channels of the squared
reconstruction error of the standardized input; the point score of row t is the mean of the
per-timestep scores over the last `score_positions` positions of the window ending at t (the
window's earlier rows may lie in the training part: a monitor has the history). The upper control
limit (UCL) is `ucl_factor` x the `ucl_quantile` quantile of the point scores of all training rows
(windows ending in [window-1, 400)). Row t is flagged when its point score exceeds the UCL.
F1 / FAR / MAR are computed on the binary `anomaly` column over the concatenated test parts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
from export import save_model  # noqa: E402
from skab_data import FEATURES, TRAIN_ROWS, load_experiments, skab_dir  # noqa: E402
from skab_model import TrainSettings, detect, score_matrices, train_model  # noqa: E402
from sparse_encoder import AttentionSpec  # noqa: E402

UCL_QUANTILE = 0.99
UCL_FACTOR = 1.0
SCORE_POSITIONS = 16

# (name, pattern, sparsity) evaluated on the dense weights without retraining (a hot swap)
HOT_SWAPS = [
    ("dense", "dense", 0.0),
    ("window-0.75", "window", 0.75),
    ("bigbird-0.75", "bigbird", 0.75),
    ("longformer-0.75", "longformer", 0.75),
    ("strided-0.75", "strided", 0.75),
    ("topk-0.75", "topk", 0.75),
    ("block-topk-0.75", "block-topk", 0.75),
    ("block-topk-0.9", "block-topk", 0.9),
    ("hybrid-0.75", "hybrid", 0.75),
    ("sampled-0.75", "sampled", 0.75),
]
# sparse variants trained with their own weights: (model directory name, pattern, sparsity)
SPARSE_TRAINED = [
    ("skab-pump-window", "window", 0.75),
    ("skab-pump-bigbird", "bigbird", 0.75),
    ("skab-pump-block-topk", "block-topk", 0.75),
]


def spec(settings: TrainSettings, pattern: str, sparsity: float) -> AttentionSpec:
    return AttentionSpec(pattern, sparsity, settings.block_size, 1, 0)


def row(result: dict, name: str, weights: str, threshold: str) -> dict:
    return {"variant": name, "weights": weights, "threshold": threshold, "density": result["density"],
            "ucl": result["ucl"], "groups": result["groups"]}


def metadata(settings: TrainSettings, exps, ucl: float, variant_spec: AttentionSpec, train_seconds: float) -> dict:
    return {
        "dataset": "SKAB (Skoltech Anomaly Benchmark), valve1 + valve2 experiments",
        "features": FEATURES,
        "window_length": settings.window,
        "standardization": f"inputs are standardized per line (per experiment) with the mean and population "
                           f"standard deviation of its first {TRAIN_ROWS} rows",
        "score": "per-timestep score = mean over channels of (output - input)^2 on the standardized input",
        "score_positions": SCORE_POSITIONS,
        "detector": f"row t is anomalous when the mean per-timestep score over the last {SCORE_POSITIONS} "
                    f"positions of the {settings.window}-step window ending at t exceeds anomaly_threshold",
        "anomaly_threshold_rule": f"{UCL_FACTOR} x quantile {UCL_QUANTILE} of that statistic on the training parts",
        "trained_with": variant_spec.to_dict(),
        "training": {"epochs": settings.epochs, "batch": settings.batch, "lr": settings.lr,
                     "denoising_noise": settings.noise, "channel_drop": settings.channel_drop,
                     "level_noise": settings.level_noise,
                     "thermal_level_shift": settings.drift, "seed": settings.seed,
                     "files": len(exps), "seconds": round(train_seconds, 1)},
    }


# variants the service offers on the dense weights of models/skab-pump (serving.json); each carries the
# UCL recalibrated for its pattern, since a pattern swap changes the residual scale
SERVING_VARIANTS = ["dense", "window-0.75", "bigbird-0.75", "block-topk-0.75", "block-topk-0.9"]


def write_serving(rows, path: str) -> None:
    variants = []
    for name in SERVING_VARIANTS:
        r = next(r for r in rows if r["variant"] == name and r["weights"] == "dense" and r["threshold"] == "own")
        pattern, _, s = name.rpartition("-") if name != "dense" else ("dense", "", "0.0")
        variants.append({"name": name, "pattern": pattern, "sparsity": float(s),
                         "anomaly_threshold": round(r["ucl"], 5)})
    with open(path, "w") as f:
        json.dump({"default_version": "1", "variants": variants, "default_variant": "dense"}, f, indent=2)
        f.write("\n")


def fmt_table(rows) -> str:
    lines = ["| variant | weights | threshold | density | valve1 F1 | valve1 FAR % | valve1 MAR % | "
             "valve2 F1 | valve2 FAR % | valve2 MAR % | all F1 | all FAR % | all MAR % |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["variant"], r["weights"], r["threshold"], f"{r['density']:.3f}"]
        for g in ("valve1", "valve2", "all"):
            m = r["groups"][g]
            cells += [f"{m['f1']:.3f}", f"{100 * m['far']:.2f}", f"{100 * m['mar']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default=os.path.join(REPO, "models"), help="output models folder")
    p.add_argument("--results", default=os.path.join(HERE, "results"), help="output folder for the tables")
    p.add_argument("--no-sparse-training", action="store_true", help="train the dense model only")
    p.add_argument("--serving-only", action="store_true",
                   help="only rewrite models/skab-pump/serving.json from the saved results")
    args = p.parse_args(argv)
    if args.serving_only:
        with open(os.path.join(args.results, "skab_results.json")) as f:
            write_serving(json.load(f)["rows"], os.path.join(args.models, "skab-pump", "serving.json"))
        return 0
    torch.set_num_threads(1)

    t_start = time.time()
    exps = load_experiments()
    settings = TrainSettings(epochs=args.epochs, seed=args.seed)
    print(f"SKAB from {skab_dir()}: {len(exps)} files, settings {settings}")

    rows = []
    # dense weights, and the hot swaps onto them
    t0 = time.time()
    dense_spec = spec(settings, "dense", 0.0)
    dense_model = train_model(exps, settings, dense_spec)
    dense_seconds = time.time() - t0
    dense_ucl = None
    for name, pattern, s in HOT_SWAPS:
        M = score_matrices(dense_model, exps, settings.window, spec(settings, pattern, s))
        own = detect(M, exps, UCL_QUANTILE, UCL_FACTOR, SCORE_POSITIONS)
        if dense_ucl is None:
            dense_ucl = own["ucl"]
            rows.append(row(own, name, "dense", "own"))
        else:
            swapped = detect(M, exps, UCL_QUANTILE, UCL_FACTOR, SCORE_POSITIONS, fixed_ucl=dense_ucl)
            rows.append(row(swapped, name, "dense", "dense"))
            rows.append(row(own, name, "dense", "own"))
        print(fmt_table(rows[-1:]).splitlines()[-1], flush=True)
    save_model(dense_model, os.path.join(args.models, "skab-pump", "1"), metadata=None)
    _finish_export(os.path.join(args.models, "skab-pump", "1"), dense_ucl,
                   metadata(settings, exps, dense_ucl, dense_spec, dense_seconds))

    if not args.no_sparse_training:
        for dirname, pattern, s in SPARSE_TRAINED:
            t0 = time.time()
            sp = spec(settings, pattern, s)
            model = train_model(exps, settings, sp)
            seconds = time.time() - t0
            res = detect(score_matrices(model, exps, settings.window, sp), exps, UCL_QUANTILE, UCL_FACTOR,
                         SCORE_POSITIONS)
            rows.append(row(res, f"{pattern}-{s}", f"{pattern}-{s}", "own"))
            print(fmt_table(rows[-1:]).splitlines()[-1], flush=True)
            model.cfg.attention = sp
            out = os.path.join(args.models, dirname, "1")
            save_model(model, out)
            _finish_export(out, res["ucl"], metadata(settings, exps, res["ucl"], sp, seconds))

    os.makedirs(args.results, exist_ok=True)
    summary = {"protocol": {"train_rows": TRAIN_ROWS, "window": settings.window, "ucl_quantile": UCL_QUANTILE,
                            "ucl_factor": UCL_FACTOR, "score_positions": SCORE_POSITIONS,
                            "groups": ["valve1", "valve2"], "torch": torch.__version__, "threads": 1},
               "settings": settings.__dict__, "seconds": round(time.time() - t_start, 1),
               "cpu_seconds": round(time.process_time(), 1), "rows": rows}
    with open(os.path.join(args.results, "skab_results.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    write_serving(rows, os.path.join(args.models, "skab-pump", "serving.json"))
    table = fmt_table(rows)
    with open(os.path.join(args.results, "skab_results.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(f"total {time.time() - t_start:.0f}s wall, {time.process_time():.0f}s CPU")
    return 0


def _finish_export(model_dir: str, ucl: float, meta: dict) -> None:
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["anomaly_threshold"] = ucl
    cfg["metadata"] = meta
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())

"""SKAB loading and the leaderboard protocol pieces: per-file split and scaling, sliding windows,
binary F1 / FAR / MAR over concatenated per-point predictions.

Data are read from the shared SKAB folder (SKAB_DIR, default ../shared/data/skab relative to the
repository root); nothing is copied into the repository.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import List

import numpy as np

FEATURES = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
            "Thermocouple", "Voltage", "Volume Flow RateRMS"]
TRAIN_ROWS = 400
GROUPS = ("valve1", "valve2")


def skab_dir() -> str:
    if os.environ.get("SKAB_DIR"):
        return os.environ["SKAB_DIR"]
    repo = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    for candidate in (os.path.join(repo, "..", "shared", "data", "skab"), "/work/shared/data/skab"):
        if os.path.isdir(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError("SKAB data not found: set SKAB_DIR to the folder holding valve1/ and valve2/")


@dataclass
class Experiment:
    group: str
    name: str
    raw: np.ndarray        # [N, 8] sensor values
    anomaly: np.ndarray    # [N] 0/1
    mean: np.ndarray       # [8] of the first TRAIN_ROWS rows
    std: np.ndarray        # [8] (population std, as sklearn's StandardScaler)

    @property
    def z(self) -> np.ndarray:
        return ((self.raw - self.mean) / self.std).astype(np.float32)


def load_experiments(root: str = None) -> List[Experiment]:
    root = root or skab_dir()
    out = []
    for group in GROUPS:
        files = sorted(glob.glob(os.path.join(root, group, "*.csv")),
                       key=lambda p: int(os.path.splitext(os.path.basename(p))[0]))
        if not files:
            raise FileNotFoundError(f"no CSV files in {os.path.join(root, group)}")
        for path in files:
            with open(path) as f:
                header = f.readline().strip().split(";")
            cols = [header.index(c) for c in FEATURES] + [header.index("anomaly")]
            data = np.genfromtxt(path, delimiter=";", skip_header=1, usecols=cols, dtype=np.float64)
            raw, anomaly = data[:, :8], data[:, 8].astype(np.int64)
            mean = raw[:TRAIN_ROWS].mean(0)
            std = raw[:TRAIN_ROWS].std(0)
            std[std == 0] = 1.0   # StandardScaler leaves constant columns unscaled
            out.append(Experiment(group, os.path.basename(path), raw, anomaly, mean, std))
    return out


def windows(z: np.ndarray, length: int, start: int, stop: int) -> np.ndarray:
    """Windows z[t-length+1 .. t] for every end t in [start, stop): [stop-start, length, C]."""
    if start - length + 1 < 0:
        raise ValueError(f"start {start}: needs {length - 1} earlier rows")
    idx = np.arange(start, stop)[:, None] + np.arange(-length + 1, 1)[None, :]
    return z[idx]


def binary_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """F1, FAR and MAR as SKAB's `evaluating(..., metric='binary')` computes them."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    tp = int((y_true & y_pred).sum())
    fp = int((~y_true & y_pred).sum())
    fn = int((y_true & ~y_pred).sum())
    tn = int((~y_true & ~y_pred).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    far = fp / (fp + tn) if fp + tn else 0.0
    mar = fn / (fn + tp) if fn + tp else 0.0
    return {"f1": f1, "far": far, "mar": mar, "tp": tp, "fp": fp, "fn": fn, "tn": tn}

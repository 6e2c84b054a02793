"""SKAB loading and the protocol pieces: lines (experiment files, and the anomaly-free recording cut into
pieces), the per-line onboarding stretch, sliding windows, binary F1 / FAR / MAR over concatenated
per-point predictions.

Data are read from the shared SKAB folder (SKAB_DIR, default ../shared/data/skab relative to the
repository root); nothing is copied into the repository.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import List

import numpy as np

FEATURES = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
            "Voltage", "Volume Flow RateRMS"]
# a line's onboarding stretch: its first rows, all normal; the rest of an experiment file is its test part
ONBOARD_ROWS = 400
GROUPS = ("valve1", "valve2")
ANOMALY_FREE = "anomaly-free"
# the anomaly-free recording (9,405 rows, one run) is cut into lines of about an experiment's length, so
# that each is onboarded on its own first rows and drifts away from them as an experiment does
ANOMALY_FREE_LINE_ROWS = 1175


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
    """One line: raw sensor rows and their labels (all 0 for anomaly-free lines)."""
    group: str
    name: str
    raw: np.ndarray        # [N, 8] sensor values, float64
    anomaly: np.ndarray    # [N] 0/1

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"

    @property
    def onboarding(self) -> np.ndarray:
        return self.raw[:ONBOARD_ROWS]

    @property
    def mean(self) -> np.ndarray:
        return self.onboarding.mean(0)

    @property
    def std(self) -> np.ndarray:
        return self.onboarding.std(0)   # population std, as sklearn's StandardScaler

    @property
    def z(self) -> np.ndarray:
        """The rows standardized with the onboarding stretch's mean and std, as FP32 model input."""
        return standardize(self.raw, self.mean, self.std)


def standardize(raw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((raw - mean) / std).astype(np.float32)


def _read(path: str, labelled: bool):
    with open(path) as f:
        header = f.readline().strip().split(";")
    cols = [header.index(c) for c in FEATURES] + ([header.index("anomaly")] if labelled else [])
    data = np.genfromtxt(path, delimiter=";", skip_header=1, usecols=cols, dtype=np.float64)
    raw = data[:, :len(FEATURES)]
    anomaly = data[:, len(FEATURES)].astype(np.int64) if labelled else np.zeros(len(raw), dtype=np.int64)
    return raw, anomaly


def load_experiments(root: str = None, groups=GROUPS) -> List[Experiment]:
    """The experiment files of `groups` in numeric file order."""
    root = root or skab_dir()
    out = []
    for group in groups:
        files = sorted(glob.glob(os.path.join(root, group, "*.csv")),
                       key=lambda p: int(os.path.splitext(os.path.basename(p))[0]))
        if not files:
            raise FileNotFoundError(f"no CSV files in {os.path.join(root, group)}")
        for path in files:
            raw, anomaly = _read(path, labelled=True)
            out.append(Experiment(group, os.path.basename(path), raw, anomaly))
    return out


def load_anomaly_free(root: str = None) -> List[Experiment]:
    """The anomaly-free recording as lines of ANOMALY_FREE_LINE_ROWS rows (the last one takes the remainder)."""
    root = root or skab_dir()
    raw, anomaly = _read(os.path.join(root, ANOMALY_FREE, "anomaly-free.csv"), labelled=False)
    pieces = max(1, len(raw) // ANOMALY_FREE_LINE_ROWS)
    bounds = [i * ANOMALY_FREE_LINE_ROWS for i in range(pieces)] + [len(raw)]
    return [Experiment(ANOMALY_FREE, f"part{i}", raw[a:b], anomaly[a:b])
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


def windows(z: np.ndarray, length: int, start: int, stop: int) -> np.ndarray:
    """Windows z[t-length+1 .. t] for every end t in [start, stop): [stop-start, length, C]."""
    if start - length + 1 < 0:
        raise ValueError(f"start {start}: needs {length - 1} earlier rows")
    idx = np.arange(start, stop)[:, None] + np.arange(-length + 1, 1)[None, :]
    return z[idx]


def normal_window_ends(anomaly: np.ndarray, length: int) -> np.ndarray:
    """Ends t of the windows whose `length` rows are all labelled normal."""
    bad = np.concatenate([[0], np.cumsum(anomaly != 0)])
    ends = np.arange(length - 1, len(anomaly))
    return ends[bad[ends + 1] - bad[ends + 1 - length] == 0]


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

"""Per-line baselines and the detectors that use them: the reference computation the service's
line baselines (src/SparseInference.Serving/Baselines) reproduce, and the classical detectors the
evaluation reports beside the model (Hotelling T2, PCA T2+Q), fitted the same way on a line's
onboarding stretch.

A line's baseline, from its onboarding stretch of raw normal rows X [n, C]:
  1. input standardization: per channel mean and population std of X;
  2. the standardized rows z = (X - mean) / std, as FP32, cut into the windows of `window` rows ending
     at every row t in [window - 1, n), run through the model: residual r = output - z [windows, W, C];
  3. residual statistics: per channel mean and population std of r over the last `positions` positions
     of every onboarding window (std floored at `residual_std_floor`);
  4. per-timestep score e = mean over channels of ((r - residual_mean) / residual_std)^2;
     point score of a window = mean of e over its last `positions` positions;
  5. threshold = margin x the (1 - false_alarm_rate) quantile (NumPy's linear interpolation) of the
     onboarding windows' point scores.
A row t of the line is flagged when the point score of the window ending at t exceeds the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Callable, Dict, List

import numpy as np

from skab_data import ONBOARD_ROWS, Experiment, binary_scores


@dataclass(frozen=True)
class ScoreSettings:
    positions: int = 16              # point score = mean per-timestep score over the window's last positions
    false_alarm_rate: float = 0.01   # the onboarding quantile the threshold starts from: 1 - this
    margin: float = 1.5              # threshold = margin x that quantile
    residual_std_floor: float = 0.05  # in standardized input units; keeps a channel the model copies
                                      # almost exactly from dominating the score

    def to_dict(self) -> dict:
        return asdict(self)


def input_statistics(onboarding: np.ndarray):
    """Per channel mean and population std (float64) of the onboarding rows."""
    return onboarding.mean(0), onboarding.std(0)


def residual_statistics(residuals: np.ndarray, positions: int, floor: float):
    """Per channel mean and population std of residuals [N, W, C] over the last `positions` positions."""
    last = residuals[:, -positions:, :].reshape(-1, residuals.shape[2]).astype(np.float64)
    return last.mean(0), np.maximum(last.std(0), floor)


def timestep_scores(residuals: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """[N, W]: mean over channels of the squared normalized residual."""
    return (((residuals.astype(np.float64) - mean) / std) ** 2).mean(-1)


def point_scores(timestep: np.ndarray, positions: int) -> np.ndarray:
    return timestep[:, -positions:].mean(1)


def threshold(onboarding_points: np.ndarray, s: ScoreSettings) -> float:
    return float(s.margin * np.quantile(onboarding_points, 1.0 - s.false_alarm_rate))


def fit_line(onboarding_raw: np.ndarray, onboarding_residuals: np.ndarray, s: ScoreSettings) -> dict:
    """The baseline of one line (see the module doc); `onboarding_residuals` are the residuals of the windows
    ending at rows [W-1, n) of the standardized onboarding rows."""
    in_mean, in_std = input_statistics(onboarding_raw)
    r_mean, r_std = residual_statistics(onboarding_residuals, s.positions, s.residual_std_floor)
    points = point_scores(timestep_scores(onboarding_residuals, r_mean, r_std), s.positions)
    quantile = float(np.quantile(points, 1.0 - s.false_alarm_rate))
    return {"input_mean": in_mean, "input_std": in_std, "residual_mean": r_mean, "residual_std": r_std,
            "onboarding_quantile": quantile, "threshold": s.margin * quantile, "rows": len(onboarding_raw),
            "onboarding_points": points}


# ------------------------------------------------------------------------------------------------
# Detectors evaluated with per-line onboarding. Each gives, per line, the point scores of the
# onboarding rows [W-1, ONBOARD_ROWS) and of the test rows [ONBOARD_ROWS, N); flags = test > threshold.
# ------------------------------------------------------------------------------------------------

def model_points(residuals: np.ndarray, W: int, s: ScoreSettings):
    """residuals [N - W + 1, W, C] of the windows ending at rows W-1 .. N-1 of a line, input standardized
    with its onboarding stretch. Returns (onboarding points, test points)."""
    n_on = ONBOARD_ROWS - (W - 1)
    r_mean, r_std = residual_statistics(residuals[:n_on], s.positions, s.residual_std_floor)
    points = point_scores(timestep_scores(residuals[:, -s.positions:, :], r_mean, r_std), s.positions)
    return points[:n_on], points[n_on:]


def _trailing_mean(x: np.ndarray, k: int) -> np.ndarray:
    """mean of x[t-k+1 .. t] (fewer at the start)."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    t = np.arange(len(x))
    lo = np.maximum(0, t - k + 1)
    return (c[t + 1] - c[lo]) / (t + 1 - lo)


def _rows_points(stat: np.ndarray, W: int, k: int):
    p = _trailing_mean(stat, k)
    return p[W - 1:ONBOARD_ROWS], p[ONBOARD_ROWS:]


def hotelling_points(e: Experiment, W: int, s: ScoreSettings):
    """Hotelling T2 of the standardized rows, mean and covariance of the onboarding stretch (divided by the
    channel count, so its scale is the model score's)."""
    z = e.z.astype(np.float64)
    on = z[:ONBOARD_ROWS]
    d = z - on.mean(0)
    cov = np.cov(on.T, bias=True) + 1e-9 * np.eye(z.shape[1])
    t2 = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d) / z.shape[1]
    return [_rows_points(t2, W, s.positions)]


PCA_VARIANCE = 0.9


def pca_points(e: Experiment, W: int, s: ScoreSettings):
    """PCA of the standardized onboarding rows, components up to PCA_VARIANCE of the variance: T2 on the
    kept components and Q (squared residual off them); two statistics, each with its own threshold."""
    z = e.z.astype(np.float64)
    on = z[:ONBOARD_ROWS]
    mu = on.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(on.T, bias=True))
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    keep = int(np.searchsorted(np.cumsum(vals) / vals.sum(), PCA_VARIANCE) + 1)
    d = z - mu
    t = d @ vecs[:, :keep]
    t2 = (t ** 2 / vals[:keep]).sum(1) / keep
    q = ((d - t @ vecs[:, :keep].T) ** 2).sum(1)
    return [_rows_points(t2, W, s.positions), _rows_points(q, W, s.positions)]


def evaluate(lines: List[Experiment], points_of: Callable[[int], list], s: ScoreSettings) -> dict:
    """Per group and `all`: F1 / FAR / MAR of the flagged test rows. `points_of(i)` returns, for line i, a list
    of (onboarding points, test points) pairs, one per statistic; a row is flagged when any statistic exceeds
    its own threshold."""
    def flags(i):
        out = None
        for on, te in points_of(i):
            f = te > threshold(on, s)
            out = f if out is None else out | f
        return out
    return evaluate_flags(lines, flags)


def evaluate_flags(lines: List[Experiment], flags_of: Callable[[int], np.ndarray]) -> dict:
    """Per group and `all`: F1 / FAR / MAR of the test rows flagged by `flags_of(i)` for line i."""
    per_group: Dict[str, tuple] = {}
    for i, e in enumerate(lines):
        g = per_group.setdefault(e.group, ([], []))
        g[0].append(e.anomaly[ONBOARD_ROWS:])
        g[1].append(flags_of(i))
    result, all_t, all_p = {}, [], []
    for group, (t, p) in per_group.items():
        result[group] = binary_scores(np.concatenate(t), np.concatenate(p))
        all_t += t
        all_p += p
    result["all"] = binary_scores(np.concatenate(all_t), np.concatenate(all_p))
    return result


LEGACY_POSITIONS = 16


def plain_points(residuals: np.ndarray) -> np.ndarray:
    """The score without a line baseline: mean over the last 16 positions of the mean squared residual."""
    return (residuals[:, -LEGACY_POSITIONS:, :].astype(np.float64) ** 2).mean(-1).mean(1).astype(np.float32)

"""Training and scoring of the SKAB reconstruction encoder (the engine's model family)."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from sparse_encoder import AttentionSpec, EncoderConfig, SparseEncoder  # noqa: E402

from skab_data import FEATURES, TRAIN_ROWS, Experiment, binary_scores, windows  # noqa: E402


DRIFTING = [FEATURES.index("Temperature"), FEATURES.index("Thermocouple")]
STATIONARY = [i for i in range(len(FEATURES)) if i not in DRIFTING]


@dataclass
class TrainSettings:
    window: int = 64
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 64
    block_size: int = 8
    epochs: int = 3
    batch: int = 64
    lr: float = 3e-3
    noise: float = 0.3          # denoising: Gaussian noise on the standardized input
    channel_drop: float = 0.1   # denoising: whole channels zeroed per window with this probability
    level_noise: float = 2.0    # denoising: a random level offset, constant over the window, added to
                                # the input (not the target) of the other channels: the model must
                                # take their level from normal operation, not copy it
    drift: float = 10.0         # level shifts U(-drift, drift) added to input and target of the
                                # slowly drifting thermal channels (Temperature, Thermocouple)
    seed: int = 0


def model_config(s: TrainSettings, spec: AttentionSpec) -> EncoderConfig:
    return EncoderConfig(
        input_kind="continuous", input_channels=len(FEATURES), d_model=s.d_model, n_heads=s.n_heads,
        n_layers=s.n_layers, d_ff=s.d_ff, max_seq_len=512, positional="sinusoidal",
        head="reconstruction", output_dim=len(FEATURES), gated=True, attention=spec)


def training_windows(exps: List[Experiment], W: int) -> np.ndarray:
    return np.concatenate([windows(e.z, W, W - 1, TRAIN_ROWS) for e in exps])


def train_model(exps: List[Experiment], s: TrainSettings, spec: AttentionSpec, log=print) -> SparseEncoder:
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model = SparseEncoder(model_config(s, spec))
    X = torch.from_numpy(training_windows(exps, s.window))
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=1e-4)
    steps = s.epochs * math.ceil(len(X) / s.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    model.train()
    for epoch in range(s.epochs):
        perm = torch.from_numpy(rng.permutation(len(X)))
        total = 0.0
        for i in range(0, len(X), s.batch):
            x = X[perm[i:i + s.batch]]
            if s.drift > 0:
                x = x.clone()
                x[:, :, DRIFTING] += (2 * torch.rand(x.shape[0], 1, len(DRIFTING)) - 1) * s.drift
            noisy = x + s.noise * torch.randn_like(x)
            if s.level_noise > 0:
                noisy[:, :, STATIONARY] += s.level_noise * torch.randn(x.shape[0], 1, len(STATIONARY))
            keep = (torch.rand(x.shape[0], 1, x.shape[2]) >= s.channel_drop).to(x.dtype)
            noisy = noisy * keep
            out, _, _ = model(noisy, None, spec)
            loss = ((out - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss) * len(x)
        log(f"  {spec.pattern}/{spec.sparsity}: epoch {epoch + 1}/{s.epochs} loss {total / len(X):.4f} "
            f"({time.time() - t0:.0f}s)")
    return model.eval()


def timestep_scores(model: SparseEncoder, X: np.ndarray, spec: AttentionSpec, batch: int = 256
                    ) -> Tuple[np.ndarray, float]:
    """Per-timestep score of every position of every window: mean over channels of the squared
    reconstruction error of the standardized input. Returns ([N, W], density)."""
    out = []
    computed = dense = 0
    with torch.no_grad():
        for i in range(0, len(X), batch):
            x = torch.from_numpy(X[i:i + batch])
            y, c, d = model(x, None, spec)
            out.append(((y - x) ** 2).mean(-1).numpy())
            computed += c
            dense += d
    return np.concatenate(out), computed / dense


def score_matrices(model, exps: List[Experiment], W: int, spec: AttentionSpec) -> list:
    """Per file: (training-part scores [n_train, W], test-part scores [n_test, W]) of the windows
    ending at each row of the part, and the effective density over both."""
    out = []
    for e in exps:
        tr, d1 = timestep_scores(model, windows(e.z, W, W - 1, TRAIN_ROWS), spec)
        te, d2 = timestep_scores(model, windows(e.z, W, TRAIN_ROWS, len(e.z)), spec)
        out.append((tr, te, (d1 * len(tr) + d2 * len(te)) / (len(tr) + len(te))))
    return out


def detect(matrices: list, exps: List[Experiment], quantile: float, factor: float, smooth: int,
           fixed_ucl: Optional[float] = None) -> dict:
    """Point t is anomalous when the mean per-timestep score over the last `smooth` positions of the
    window ending at t exceeds UCL = factor x quantile of the same statistic on the training parts
    (or `fixed_ucl`, as when a sparse pattern is swapped onto weights calibrated densely)."""
    train = np.concatenate([tr[:, -smooth:].mean(1) for tr, _, _ in matrices])
    ucl = float(np.quantile(train, quantile) * factor) if fixed_ucl is None else float(fixed_ucl)
    per_group = {}
    for (tr, te, _), e in zip(matrices, exps):
        g = per_group.setdefault(e.group, ([], []))
        g[0].append(e.anomaly[TRAIN_ROWS:])
        g[1].append(te[:, -smooth:].mean(1) > ucl)
    result = {"ucl": ucl, "density": float(np.mean([m[2] for m in matrices])), "groups": {}}
    all_t, all_p = [], []
    for group, (t, p) in per_group.items():
        result["groups"][group] = binary_scores(np.concatenate(t), np.concatenate(p))
        all_t += t
        all_p += p
    result["groups"]["all"] = binary_scores(np.concatenate(all_t), np.concatenate(all_p))
    return result

"""Training and scoring of the SKAB reconstruction encoder (the engine's model family)."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import List

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from sparse_encoder import AttentionSpec, EncoderConfig, SparseEncoder  # noqa: E402

from skab_data import FEATURES, ONBOARD_ROWS, Experiment, normal_window_ends, windows  # noqa: E402


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
    stride: int = 2             # every stride-th normal window of each line (neighbours overlap in 63 of 64 rows)
    noise: float = 0.3          # denoising: Gaussian noise on the standardized input
    channel_drop: float = 0.1   # denoising: whole channels zeroed per window with this probability
    level_noise: float = 2.0    # a random level offset, constant over the window, added to the input (not the
                                # target) of the stationary channels: the model must take their level from
                                # normal operation, not copy it
    drift: float = 10.0         # level shifts U(-drift, drift) added to input and target of the slowly
                                # drifting thermal channels (Temperature, Thermocouple)
    gain: float = 0.0           # per window and channel, input and target scaled by exp(N(0, gain^2)): a
                                # line whose later rows vary more or less than its onboarding stretch did
    thermal_gain: float = 0.0   # the same for the thermal channels alone, whose onboarding deviation (a slow
                                # drift over 400 s) says little about their later excursions
    reference: str = "onboarding"  # standardize each training line with its onboarding stretch ("onboarding"),
                                   # or each window with a random 400-row normal stretch of its line ("random")
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def model_config(s: TrainSettings, spec: AttentionSpec) -> EncoderConfig:
    return EncoderConfig(
        input_kind="continuous", input_channels=len(FEATURES), d_model=s.d_model, n_heads=s.n_heads,
        n_layers=s.n_layers, d_ff=s.d_ff, max_seq_len=512, positional="sinusoidal",
        head="reconstruction", output_dim=len(FEATURES), gated=True, attention=spec)


def _reference_stretches(e: Experiment, rng: np.random.Generator, count: int):
    """Mean and std of `count` random 400-row stretches of normal rows (the onboarding stretch first)."""
    bad = np.concatenate([[0], np.cumsum(e.anomaly != 0)])
    starts = np.arange(0, len(e.raw) - ONBOARD_ROWS + 1)
    starts = starts[bad[starts + ONBOARD_ROWS] - bad[starts] == 0]
    chosen = [0] + list(rng.choice(starts, size=min(count - 1, len(starts)), replace=False))
    stretches = np.stack([e.raw[a:a + ONBOARD_ROWS] for a in chosen])
    return stretches.mean(1), stretches.std(1)


def training_windows(lines: List[Experiment], s: TrainSettings, rng: np.random.Generator):
    """Every stride-th all-normal window of every line, less the line's onboarding mean (float32), with the
    mean offsets and stds the windows may be standardized with: (raw [N, W, C], offset [N, R, C], std [N, R, C])."""
    raws, offsets, stds = [], [], []
    for e in lines:
        ends = normal_window_ends(e.anomaly, s.window)[::s.stride]
        centred = e.raw - e.mean
        raws.append(windows(centred, s.window, s.window - 1, len(e.raw))[ends - (s.window - 1)].astype(np.float32))
        count = 16 if s.reference == "random" else 1
        mean, std = _reference_stretches(e, rng, count)
        offsets.append(np.broadcast_to((mean - e.mean)[None], (len(ends),) + mean.shape))
        stds.append(np.broadcast_to(std[None], (len(ends),) + std.shape))
    return (np.concatenate(raws), np.concatenate(offsets).astype(np.float32),
            np.concatenate(stds).astype(np.float32))


def train_model(lines: List[Experiment], s: TrainSettings, spec: AttentionSpec, log=print) -> SparseEncoder:
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model = SparseEncoder(model_config(s, spec))
    raw, offsets, stds = (torch.from_numpy(a) for a in training_windows(lines, s, rng))
    n, refs = len(raw), offsets.shape[1]
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=1e-4)
    steps = s.epochs * math.ceil(n / s.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    model.train()
    for epoch in range(s.epochs):
        perm = torch.from_numpy(rng.permutation(n))
        total = 0.0
        for i in range(0, n, s.batch):
            idx = perm[i:i + s.batch]
            b = len(idx)
            ref = torch.from_numpy(rng.integers(0, refs, size=b))
            x = (raw[idx] - offsets[idx, ref][:, None, :]) / stds[idx, ref][:, None, :]
            if s.gain > 0:
                x = x * torch.exp(s.gain * torch.randn(b, 1, x.shape[2]))
            if s.thermal_gain > 0:
                x[:, :, DRIFTING] *= torch.exp(s.thermal_gain * torch.randn(b, 1, len(DRIFTING)))
            if s.drift > 0:
                x[:, :, DRIFTING] += (2 * torch.rand(b, 1, len(DRIFTING)) - 1) * s.drift
            noisy = x + s.noise * torch.randn_like(x)
            if s.level_noise > 0:
                noisy[:, :, STATIONARY] += s.level_noise * torch.randn(b, 1, len(STATIONARY))
            keep = (torch.rand(b, 1, x.shape[2]) >= s.channel_drop).to(x.dtype)
            noisy = noisy * keep
            out, _, _ = model(noisy, None, spec)
            loss = ((out - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss) * b
        log(f"  {spec.pattern}/{spec.sparsity}: epoch {epoch + 1}/{s.epochs} loss {total / n:.4f} "
            f"({n} windows, {time.time() - t0:.0f}s)")
    return model.eval()


def residuals(model: SparseEncoder, X: np.ndarray, spec: AttentionSpec, batch: int = 256):
    """Reconstruction residuals output - input of windows X [N, W, C]: ([N, W, C] float32, density)."""
    out = []
    computed = dense = 0
    with torch.no_grad():
        for i in range(0, len(X), batch):
            x = torch.from_numpy(X[i:i + batch])
            y, c, d = model(x, None, spec)
            out.append((y - x).numpy())
            computed += c
            dense += d
    return np.concatenate(out), computed / dense


def line_residuals(model: SparseEncoder, lines: List[Experiment], W: int, spec: AttentionSpec):
    """Per line, the residuals of the windows ending at rows W-1 .. N-1 (input standardized with the line's
    onboarding stretch), and the density over all of them."""
    out, computed = [], 0.0
    count = 0
    for e in lines:
        r, density = residuals(model, windows(e.z, W, W - 1, len(e.raw)), spec)
        out.append(r)
        computed += density * len(r)
        count += len(r)
    return out, computed / count

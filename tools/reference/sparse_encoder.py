"""PyTorch reference of the sparse-attention encoder described in docs/model-format.md.

The reference favours clarity over speed: every attention pattern is built as an explicit
boolean mask over (query, key) pairs, per group of sequences that share a valid length, so that
padding can never influence a sequence. `forward_dense_fast` is the conventional PyTorch way
(one batch, materialised scores, key-padding mask) and serves as the benchmark peer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

PATTERNS = (
    "dense", "window", "longformer", "bigbird", "strided",
    "topk", "block-topk", "hybrid", "sampled", "gated",
)

MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------------------------
# Seeded uniforms (SplitMix64 finaliser on uint64)
# --------------------------------------------------------------------------------------------

def mix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def seeded_uniform(seed: int, layer: int, head: int, qb: int, kb: int) -> float:
    h = mix64(mix64(mix64(mix64(mix64(seed & MASK64) ^ layer) ^ head) ^ qb) ^ kb)
    # int -> double is exact below 2^53; the +0.5 rounds as IEEE double does on every side.
    return (float(h >> 11) + 0.5) * (2.0 ** -53)


def uniform_table(seed: int, layer: int, head: int, n: int) -> torch.Tensor:
    """u(seed, layer, head, qb, kb) for all qb, kb < n, float64 [n, n]."""
    return torch.tensor(
        [[seeded_uniform(seed, layer, head, qb, kb) for kb in range(n)] for qb in range(n)],
        dtype=torch.float64)


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def block_budget(sparsity: float, n: int) -> int:
    return clamp(round_half_up((1.0 - float(sparsity)) * n), 1, n)


def token_budget(sparsity: float, length: int) -> int:
    return clamp(round_half_up((1.0 - float(sparsity)) * length), 1, length)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclass
class AttentionSpec:
    pattern: str = "dense"
    sparsity: float = 0.0
    block_size: int = 16
    global_blocks: int = 1
    seed: int = 0

    @staticmethod
    def from_dict(d: dict) -> "AttentionSpec":
        return AttentionSpec(
            pattern=d.get("pattern", "dense"),
            sparsity=float(d.get("sparsity", 0.0)),
            block_size=int(d.get("block_size", 16)),
            global_blocks=int(d.get("global_blocks", 1)),
            seed=int(d.get("seed", 0)),
        )

    def to_dict(self) -> dict:
        return {"pattern": self.pattern, "sparsity": self.sparsity, "block_size": self.block_size,
                "global_blocks": self.global_blocks, "seed": self.seed}

    def validate(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"attention.pattern: expected one of {PATTERNS}, got {self.pattern!r}")
        if not (0.0 <= self.sparsity < 1.0):
            raise ValueError(f"attention.sparsity: expected a value in [0, 1), got {self.sparsity}")
        if self.block_size < 1:
            raise ValueError(f"attention.block_size: expected >= 1, got {self.block_size}")
        if self.global_blocks < 0:
            raise ValueError(f"attention.global_blocks: expected >= 0, got {self.global_blocks}")
        if not (0 <= self.seed <= MASK64):
            raise ValueError(f"attention.seed: expected a uint64, got {self.seed}")


@dataclass
class EncoderConfig:
    input_kind: str = "continuous"
    input_channels: int = 8
    vocab_size: int = 0
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 256
    max_seq_len: int = 1024
    positional: str = "sinusoidal"
    layer_norm_eps: float = 1e-5
    head: str = "reconstruction"
    output_dim: int = 8
    gated: bool = False
    attention: AttentionSpec = field(default_factory=AttentionSpec)
    anomaly_threshold: Optional[float] = None
    metadata: dict = field(default_factory=dict)

    @staticmethod
    def from_dict(d: dict) -> "EncoderConfig":
        if d.get("format", "sparseinference-encoder") != "sparseinference-encoder":
            raise ValueError(f"format: expected 'sparseinference-encoder', got {d.get('format')!r}")
        if int(d.get("format_version", 1)) != 1:
            raise ValueError(f"format_version: expected 1, got {d.get('format_version')}")
        c = EncoderConfig(
            input_kind=d["input_kind"], input_channels=int(d.get("input_channels", 0)),
            vocab_size=int(d.get("vocab_size", 0)), d_model=int(d["d_model"]),
            n_heads=int(d["n_heads"]), n_layers=int(d["n_layers"]), d_ff=int(d["d_ff"]),
            max_seq_len=int(d["max_seq_len"]), positional=d.get("positional", "sinusoidal"),
            layer_norm_eps=float(d.get("layer_norm_eps", 1e-5)), head=d["head"],
            output_dim=int(d["output_dim"]), gated=bool(d.get("gated", False)),
            attention=AttentionSpec.from_dict(d.get("attention", {})),
            anomaly_threshold=d.get("anomaly_threshold"), metadata=d.get("metadata", {}) or {})
        c.validate()
        return c

    def to_dict(self) -> dict:
        return {
            "format": "sparseinference-encoder", "format_version": 1,
            "input_kind": self.input_kind, "input_channels": self.input_channels,
            "vocab_size": self.vocab_size, "d_model": self.d_model, "n_heads": self.n_heads,
            "n_layers": self.n_layers, "d_ff": self.d_ff, "max_seq_len": self.max_seq_len,
            "positional": self.positional, "layer_norm_eps": self.layer_norm_eps,
            "head": self.head, "output_dim": self.output_dim, "gated": self.gated,
            "attention": self.attention.to_dict(), "anomaly_threshold": self.anomaly_threshold,
            "metadata": self.metadata,
        }

    def validate(self) -> None:
        if self.input_kind not in ("continuous", "tokens"):
            raise ValueError(f"input_kind: expected 'continuous' or 'tokens', got {self.input_kind!r}")
        if self.input_kind == "continuous" and self.input_channels < 1:
            raise ValueError(f"input_channels: expected >= 1 for continuous input, got {self.input_channels}")
        if self.input_kind == "tokens" and self.vocab_size < 1:
            raise ValueError(f"vocab_size: expected >= 1 for token input, got {self.vocab_size}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model: expected a multiple of n_heads ({self.n_heads}), got {self.d_model}")
        if self.positional not in ("sinusoidal", "learned"):
            raise ValueError(f"positional: expected 'sinusoidal' or 'learned', got {self.positional!r}")
        if self.head not in ("reconstruction", "regression", "classification"):
            raise ValueError(f"head: expected reconstruction/regression/classification, got {self.head!r}")
        self.attention.validate()


# --------------------------------------------------------------------------------------------
# Selection helper: top-`count` with ties to the lower index, plus the decision margin
# --------------------------------------------------------------------------------------------

def select_top(values: torch.Tensor, count: torch.Tensor, candidates: torch.Tensor
               ) -> Tuple[torch.Tensor, float]:
    """Marks, along the last dim, the `count` candidates with the largest values (ties: lower index).

    values [..., n] float; count [...] long (broadcastable); candidates [..., n] bool.
    Returns (selected bool [..., n], margin) where margin is the smallest gap between the last
    selected and the first rejected candidate (inf when nothing was rejected): a small margin
    means another precision could choose differently.
    """
    neg_inf = torch.tensor(float("-inf"), dtype=values.dtype)
    v = torch.where(candidates, values, neg_inf)
    order = torch.argsort(-v, dim=-1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(v.shape[-1]).expand_as(order).contiguous())
    count = count.expand(v.shape[:-1])
    selected = (ranks < count.unsqueeze(-1)) & candidates

    sorted_v = torch.gather(v, -1, order)
    n_cand = candidates.sum(-1)
    has_rejected = (count > 0) & (count < n_cand)
    margin = float("inf")
    if bool(has_rejected.any()):
        c = count.clamp(min=1, max=v.shape[-1] - 1).unsqueeze(-1)
        last_kept = torch.gather(sorted_v, -1, c - 1).squeeze(-1)
        first_rejected = torch.gather(sorted_v, -1, c).squeeze(-1)
        gaps = (last_kept - first_rejected)[has_rejected]
        margin = float(gaps.min())
    return selected, margin


# --------------------------------------------------------------------------------------------
# Block selections: [n, n] (same for all heads) or [G, H, n, n]
# --------------------------------------------------------------------------------------------

def _block_distance(n: int) -> torch.Tensor:
    idx = torch.arange(n)
    return (idx.view(n, 1) - idx.view(1, n)).abs()


def static_block_selection(spec: AttentionSpec, n: int, layer: int) -> torch.Tensor:
    """Block selection [n, n] for the patterns that depend on the valid length only."""
    K = block_budget(spec.sparsity, n)
    dist = _block_distance(n)
    idx = torch.arange(n)
    if spec.pattern == "dense":
        return torch.ones(n, n, dtype=torch.bool)
    if spec.pattern == "window":
        r = (K - 1) // 2
        return dist <= r
    if spec.pattern == "longformer":
        G = min(spec.global_blocks, n)
        r = max(0, K - G - 1) // 2
        sel = (dist <= r) | (idx.view(1, n) < G)
        sel[:G, :] = True
        return sel
    if spec.pattern == "bigbird":
        G = min(spec.global_blocks, n)
        base = (dist <= 1) | (idx.view(1, n) < G)
        base[:G, :] = True
        u = uniform_table(spec.seed, layer, 0, n)
        R = (K - base.sum(-1)).clamp(min=0)
        extra, _ = select_top(-u, R, ~base)   # smallest u first
        return base | extra
    if spec.pattern == "strided":
        r = 1 if K >= 3 else 0
        S = max(1, ceil_div(n, max(1, K - (2 * r + 1))))
        return (dist <= r) | ((idx.view(1, n) % S) == (S - 1))
    raise ValueError(f"pattern {spec.pattern!r} is not static")


def pooled_block_scores(q: torch.Tensor, k: torch.Tensor, block_size: int) -> torch.Tensor:
    """q, k [G, H, L, dh] -> S [G, H, n, n] from block means over valid positions."""
    G, H, L, dh = q.shape
    n = ceil_div(L, block_size)
    blk = torch.arange(L) // block_size
    pool = torch.zeros(n, L, dtype=q.dtype)
    pool[blk, torch.arange(L)] = 1.0
    pool = pool / pool.sum(-1, keepdim=True)
    qb = torch.einsum("nl,ghld->ghnd", pool, q)
    kb = torch.einsum("nl,ghld->ghnd", pool, k)
    return torch.einsum("ghnd,ghmd->ghnm", qb, kb) / math.sqrt(dh)


def dynamic_block_selection(spec: AttentionSpec, q: torch.Tensor, k: torch.Tensor, layer: int,
                            stats: Optional[dict]) -> torch.Tensor:
    """Block selection [G, H, n, n] for block-topk, hybrid and sampled."""
    G, H, L, dh = q.shape
    n = ceil_div(L, spec.block_size)
    K = block_budget(spec.sparsity, n)
    S = pooled_block_scores(q, k, spec.block_size)
    eye = torch.eye(n, dtype=torch.bool)
    if spec.pattern == "block-topk":
        sel, margin = select_top(S, torch.tensor(K - 1), ~eye)
        sel = sel | eye
    elif spec.pattern == "hybrid":
        win = _block_distance(n) <= 1
        R = (K - win.sum(-1)).clamp(min=0)
        sel, margin = select_top(S, R, ~win)
        sel = sel | win
    elif spec.pattern == "sampled":
        u = torch.stack([uniform_table(spec.seed, layer, h, n) for h in range(H)])  # [H, n, n]
        g = -torch.log(-torch.log(u)).to(S.dtype)
        sel, margin = select_top(S + g, torch.tensor(K - 1), ~eye)
        sel = sel | eye
    else:
        raise ValueError(f"pattern {spec.pattern!r} is not a dynamic block pattern")
    _note_margin(stats, margin)
    return sel


def _note_margin(stats: Optional[dict], margin: float) -> None:
    if stats is not None:
        stats["min_margin"] = min(stats.get("min_margin", float("inf")), margin)


def blocks_to_tokens(sel: torch.Tensor, L: int, block_size: int) -> torch.Tensor:
    """[..., n, n] block selection -> [..., L, L] token mask."""
    blk = torch.arange(L) // block_size
    return sel[..., blk, :][..., :, blk]


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d = cfg.d_model
        self.ln1 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.attn = Attention(d)
        self.ln2 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.ff1 = nn.Linear(d, cfg.d_ff)
        self.ff2 = nn.Linear(cfg.d_ff, d)
        if cfg.gated:
            self.gate = nn.Linear(d, 1)


def sinusoidal_table(T: int, d: int, dtype=torch.float64) -> torch.Tensor:
    t = torch.arange(T, dtype=torch.float64).unsqueeze(1)
    i2 = torch.arange(0, d, 2, dtype=torch.float64)
    angle = t / torch.pow(torch.tensor(10000.0, dtype=torch.float64), i2 / d)
    P = torch.zeros(T, d, dtype=torch.float64)
    P[:, 0::2] = torch.sin(angle)
    P[:, 1::2] = torch.cos(angle[:, : d // 2])
    return P.to(dtype)


class SparseEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        if cfg.input_kind == "continuous":
            self.input_proj = nn.Linear(cfg.input_channels, d)
        else:
            self.embedding = nn.Embedding(cfg.vocab_size, d)
        if cfg.positional == "learned":
            self.pos_embedding = nn.Embedding(cfg.max_seq_len, d)
        self.layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg.n_layers)])
        self.final_ln = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.head = nn.Linear(d, cfg.output_dim)

    # ---- shared pieces ------------------------------------------------------------------

    def _dtype(self) -> torch.dtype:
        return self.final_ln.weight.dtype

    def _embed(self, inputs: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.input_kind == "continuous":
            x = self.input_proj(inputs.to(self._dtype()))
        else:
            if bool((inputs < 0).any()) or bool((inputs >= cfg.vocab_size).any()):
                raise ValueError(f"input: token ids must lie in [0, {cfg.vocab_size})")
            x = self.embedding(inputs.long())
        T = x.shape[1]
        if T > cfg.max_seq_len:
            raise ValueError(f"input: time {T} exceeds max_seq_len {cfg.max_seq_len}")
        if cfg.positional == "learned":
            x = x + self.pos_embedding.weight[:T]
        else:
            x = x + sinusoidal_table(T, cfg.d_model, x.dtype)
        return x

    def _split_heads(self, layer: EncoderLayer, h: torch.Tensor):
        G, L, d = h.shape
        H = self.cfg.n_heads
        qkv = layer.attn.qkv(h)
        q, k, v = qkv.split(d, dim=-1)
        shape = lambda t: t.view(G, L, H, d // H).transpose(1, 2)  # noqa: E731
        return shape(q), shape(k), shape(v)

    def _merge_heads(self, o: torch.Tensor) -> torch.Tensor:
        G, H, L, dh = o.shape
        return o.transpose(1, 2).reshape(G, L, H * dh)

    def _head(self, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.cfg.head == "classification":
            T = y.shape[1]
            valid = (torch.arange(T).view(1, T) < lengths.view(-1, 1)).to(y.dtype)
            pooled = (y * valid.unsqueeze(-1)).sum(1) / lengths.to(y.dtype).view(-1, 1)
            return self.head(pooled)
        out = self.head(y)
        T = y.shape[1]
        valid = (torch.arange(T).view(1, T) < lengths.view(-1, 1)).to(out.dtype)
        return out * valid.unsqueeze(-1)

    # ---- reference forward: any pattern, sequences grouped by valid length ----------------

    def forward(self, inputs: torch.Tensor, lengths: Optional[Sequence[int]] = None,
                spec: Optional[AttentionSpec] = None, stats: Optional[dict] = None
                ) -> Tuple[torch.Tensor, int, int]:
        """Returns (output, computed_pairs, dense_pairs) as docs/model-format.md defines them."""
        cfg = self.cfg
        spec = spec or cfg.attention
        spec.validate()
        if spec.pattern == "gated" and not cfg.gated:
            raise ValueError("attention.pattern: 'gated' needs a model with gated: true")
        B, T = inputs.shape[0], inputs.shape[1]
        lengths_t = torch.full((B,), T, dtype=torch.long) if lengths is None else \
            torch.as_tensor(list(lengths), dtype=torch.long)
        if lengths_t.shape != (B,) or bool((lengths_t < 1).any()) or bool((lengths_t > T).any()):
            raise ValueError(f"lengths: expected {B} values in [1, {T}], got {lengths_t.tolist()}")

        y_full = torch.zeros(B, T, cfg.d_model, dtype=self._dtype())
        computed = 0
        for L in sorted(set(lengths_t.tolist())):
            members = (lengths_t == L).nonzero().flatten()
            x = self._embed(inputs[members, :L])
            c, y = self._encode_equal_length(x, spec, stats)
            computed += c
            y_full[members, :L] = y
        dense_pairs = cfg.n_layers * cfg.n_heads * int((lengths_t ** 2).sum())
        return self._head(y_full, lengths_t), computed, dense_pairs

    def _encode_equal_length(self, x: torch.Tensor, spec: AttentionSpec, stats: Optional[dict]
                             ) -> Tuple[int, torch.Tensor]:
        """x [G, L, d]: a group of sequences, all of valid length L (no padding inside)."""
        G, L, d = x.shape
        H = self.cfg.n_heads
        dh = d // H
        computed = 0
        for li, layer in enumerate(self.layers):
            h = layer.ln1(x)
            q, k, v = self._split_heads(layer, h)
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh)        # [G, H, L, L]
            if spec.pattern == "gated":
                g = torch.sigmoid(layer.gate(h)).squeeze(-1)         # [G, L]
                m = token_budget(spec.sparsity, L)
                active, margin = select_top(g, torch.tensor(m), torch.ones_like(g, dtype=torch.bool))
                _note_margin(stats, margin)
                mask = (active.unsqueeze(-1) & active.unsqueeze(-2)).unsqueeze(1).expand(G, H, L, L)
                # inactive queries get their own key so softmax stays finite; their output is dropped
                mask = mask | torch.eye(L, dtype=torch.bool)
                computed += G * H * m * m
                o = self._merge_heads(torch.softmax(scores.masked_fill(~mask, float("-inf")), -1) @ v)
                x = x + layer.attn.out(o) * (g * active.to(g.dtype)).unsqueeze(-1)
            else:
                mask = self._pattern_mask(spec, q, k, scores, li, stats)  # broadcastable to [G, H, L, L]
                mask = mask.expand(G, H, L, L)
                computed += int(mask.sum())
                o = self._merge_heads(torch.softmax(scores.masked_fill(~mask, float("-inf")), -1) @ v)
                x = x + layer.attn.out(o)
            x = x + layer.ff2(F.gelu(layer.ff1(layer.ln2(x))))
        return computed, self.final_ln(x)

    def _pattern_mask(self, spec: AttentionSpec, q, k, scores, layer: int, stats) -> torch.Tensor:
        G, H, L, _ = scores.shape
        Bk = spec.block_size
        n = ceil_div(L, Bk)
        if spec.pattern in ("dense", "window", "longformer", "bigbird", "strided"):
            return blocks_to_tokens(static_block_selection(spec, n, layer), L, Bk)
        if spec.pattern == "topk":
            kk = token_budget(spec.sparsity, L)
            sel, margin = select_top(scores, torch.tensor(kk), torch.ones_like(scores, dtype=torch.bool))
            _note_margin(stats, margin)
            return sel
        if spec.pattern in ("block-topk", "hybrid", "sampled"):
            return blocks_to_tokens(dynamic_block_selection(spec, q, k, layer, stats), L, Bk)
        raise ValueError(f"attention.pattern: unknown {spec.pattern!r}")

    # ---- conventional dense forward: one batch, materialised scores, key-padding mask -----

    def forward_dense_fast(self, inputs: torch.Tensor, lengths: Optional[Sequence[int]] = None
                           ) -> torch.Tensor:
        cfg = self.cfg
        B, T = inputs.shape[0], inputs.shape[1]
        lengths_t = torch.full((B,), T, dtype=torch.long) if lengths is None else \
            torch.as_tensor(list(lengths), dtype=torch.long)
        valid = torch.arange(T).view(1, T) < lengths_t.view(B, 1)       # [B, T]
        key_bias = torch.zeros(B, 1, 1, T, dtype=self._dtype()).masked_fill(
            ~valid.view(B, 1, 1, T), float("-inf"))
        x = self._embed(inputs)
        dh = cfg.d_model // cfg.n_heads
        for layer in self.layers:
            q, k, v = self._split_heads(layer, layer.ln1(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + key_bias
            x = x + layer.attn.out(self._merge_heads(torch.softmax(scores, -1) @ v))
            x = x + layer.ff2(F.gelu(layer.ff1(layer.ln2(x))))
        return self._head(self.final_ln(x), lengths_t)


def random_model(cfg: EncoderConfig, seed: int = 0, scale: float = 1.0) -> SparseEncoder:
    """A model with reproducible random weights (PyTorch default init, LayerNorms perturbed)."""
    torch.manual_seed(seed)
    model = SparseEncoder(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "final_ln.weight":
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "ln" in name and name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif scale != 1.0:
                p.mul_(scale)
    return model

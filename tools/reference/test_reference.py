"""Self-checks of the PyTorch reference. They need PyTorch, which CI does not install: run them on
a development machine that has it, from the repository root:

  /usr/bin/python3 -m unittest discover -s tools/reference -p 'test_*.py' -v

The selection rules are checked against a second, deliberately naive implementation written
from docs/model-format.md with plain Python loops.
"""

from __future__ import annotations

import math
import os
import struct
import json
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import load_model, save_model  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402
from sparse_encoder import (PATTERNS, AttentionSpec, EncoderConfig, mix64, random_model,  # noqa: E402
                            seeded_uniform)

torch.set_num_threads(1)


def tiny(**kw) -> EncoderConfig:
    base = dict(input_kind="continuous", input_channels=3, d_model=16, n_heads=2, n_layers=2, d_ff=32,
                max_seq_len=64, head="reconstruction", output_dim=3, gated=True,
                attention=AttentionSpec("dense", 0.0, 8, 1, 0))
    base.update(kw)
    return EncoderConfig(**base)


# ---------------------------------------------------------------------------------------------
# Naive selection, straight from the contract text
# ---------------------------------------------------------------------------------------------

def naive_round(x):
    return math.floor(x + 0.5)


def naive_key_blocks(pattern, s, n, G_req, seed, layer, head, S=None):
    """Set of key blocks per query block (list of sets); S: pooled scores [n][n] for dynamic ones."""
    K = min(max(naive_round((1 - s) * n), 1), n)
    G = min(G_req, n)
    out = []
    for qb in range(n):
        if pattern == "dense":
            sel = set(range(n))
        elif pattern == "window":
            r = (K - 1) // 2
            sel = {kb for kb in range(n) if abs(kb - qb) <= r}
        elif pattern == "longformer":
            r = max(0, K - G - 1) // 2
            sel = set(range(n)) if qb < G else {kb for kb in range(n) if kb < G or abs(kb - qb) <= r}
        elif pattern == "bigbird":
            sel = set(range(n)) if qb < G else {kb for kb in range(n) if kb < G or abs(kb - qb) <= 1}
            R = max(0, K - len(sel))
            rest = sorted((kb for kb in range(n) if kb not in sel),
                          key=lambda kb: (seeded_uniform(seed, layer, 0, qb, kb), kb))
            sel |= set(rest[:R])
        elif pattern == "strided":
            r = 1 if K >= 3 else 0
            Sstride = max(1, math.ceil(n / max(1, K - (2 * r + 1))))
            sel = {kb for kb in range(n) if abs(kb - qb) <= r or kb % Sstride == Sstride - 1}
        elif pattern == "block-topk":
            rest = sorted((kb for kb in range(n) if kb != qb), key=lambda kb: (-S[qb][kb], kb))
            sel = {qb} | set(rest[:K - 1])
        elif pattern == "hybrid":
            sel = {kb for kb in range(n) if abs(kb - qb) <= 1}
            rest = sorted((kb for kb in range(n) if kb not in sel), key=lambda kb: (-S[qb][kb], kb))
            sel |= set(rest[:max(0, K - len(sel))])
        elif pattern == "sampled":
            def key(kb):
                u = seeded_uniform(seed, layer, head, qb, kb)
                return (-(S[qb][kb] - math.log(-math.log(u))), kb)
            rest = sorted((kb for kb in range(n) if kb != qb), key=key)
            sel = {qb} | set(rest[:K - 1])
        else:
            raise ValueError(pattern)
        out.append(sel)
    return out


def naive_pooled_scores(q, k, Bk):
    """q, k: [L][dh] lists -> S [n][n]."""
    L, dh = len(q), len(q[0])
    n = math.ceil(L / Bk)
    def mean(rows):
        return [sum(r[j] for r in rows) / len(rows) for j in range(dh)]
    qm = [mean(q[b * Bk:min((b + 1) * Bk, L)]) for b in range(n)]
    km = [mean(k[b * Bk:min((b + 1) * Bk, L)]) for b in range(n)]
    return [[sum(a * b for a, b in zip(qm[i], km[j])) / math.sqrt(dh) for j in range(n)] for i in range(n)]


class SelectionTests(unittest.TestCase):
    def test_mix64_firstOutputOfSeedZero_matchesSplitMix64(self):
        # SplitMix64 seeded with 0 yields 0xE220A8397B1DCDAF first (Vigna's reference generator).
        self.assertEqual(mix64(0), 0xE220A8397B1DCDAF)

    def test_seededUniform_anySeed_liesInOpenUnitInterval(self):
        for seed in (0, 1, 2 ** 63, 2 ** 64 - 1):
            u = seeded_uniform(seed, 3, 1, 4, 5)
            self.assertTrue(0.0 < u < 1.0)
        self.assertNotEqual(seeded_uniform(1, 0, 0, 0, 1), seeded_uniform(1, 0, 0, 1, 0))

    def test_patternMask_randomQueriesKeys_matchesNaiveSelection(self):
        model = random_model(tiny(), seed=3).double()
        H, dh = 2, 8
        for L in (5, 8, 21, 37, 64):
            for Bk in (4, 8):
                n = math.ceil(L / Bk)
                for pattern in ("dense", "window", "longformer", "bigbird", "strided",
                                "block-topk", "hybrid", "sampled"):
                    for s in (0.0, 0.3, 0.5, 0.75, 0.9, 0.99):
                        for G in (1, 2):
                            spec = AttentionSpec(pattern, s, Bk, G, 2 ** 63 + 12345)
                            gen = torch.Generator().manual_seed(L * 100 + Bk)
                            q = torch.randn(1, H, L, dh, generator=gen, dtype=torch.float64)
                            k = torch.randn(1, H, L, dh, generator=gen, dtype=torch.float64)
                            scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
                            mask = model._pattern_mask(spec, q, k, scores, 1, None).expand(1, H, L, L)
                            for h in range(H):
                                S = naive_pooled_scores(q[0, h].tolist(), k[0, h].tolist(), Bk)
                                blocks = naive_key_blocks(pattern, s, n, G, spec.seed, 1, h, S)
                                want = [[(j // Bk) in blocks[i // Bk] for j in range(L)] for i in range(L)]
                                self.assertEqual(mask[0, h].tolist(), want,
                                                 f"{pattern} s={s} L={L} Bk={Bk} G={G} head={h}")

    def test_topkMask_randomScores_keepsLargestWithLowerIndexOnTies(self):
        model = random_model(tiny(), seed=3).double()
        L = 13
        scores = torch.randn(1, 1, L, L, dtype=torch.float64)
        scores[0, 0, 0] = torch.tensor([1.0] * L, dtype=torch.float64)   # all tied: lowest indices win
        for s in (0.0, 0.5, 0.8):
            kk = min(max(naive_round((1 - s) * L), 1), L)
            mask = model._pattern_mask(AttentionSpec("topk", s, 4), None, None, scores, 0, None)
            for i in range(L):
                row = scores[0, 0, i].tolist()
                want = set(sorted(range(L), key=lambda j: (-row[j], j))[:kk])
                self.assertEqual({j for j in range(L) if mask[0, 0, i, j]}, want)


class ForwardTests(unittest.TestCase):
    def setUp(self):
        self.model = random_model(tiny(), seed=5).double().eval()
        gen = torch.Generator().manual_seed(9)
        self.x = torch.randn(3, 37, 3, generator=gen, dtype=torch.float64)
        self.lengths = [37, 20, 6]

    def test_densePattern_paddedBatch_equalsTorchTransformerEncoderLayers(self):
        m = self.model
        layers = []
        for layer in m.layers:
            ref = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu", batch_first=True,
                                             norm_first=True, layer_norm_eps=1e-5).double().eval()
            with torch.no_grad():
                ref.self_attn.in_proj_weight.copy_(layer.attn.qkv.weight)
                ref.self_attn.in_proj_bias.copy_(layer.attn.qkv.bias)
                ref.self_attn.out_proj.weight.copy_(layer.attn.out.weight)
                ref.self_attn.out_proj.bias.copy_(layer.attn.out.bias)
                for a, b in ((ref.linear1, layer.ff1), (ref.linear2, layer.ff2),
                             (ref.norm1, layer.ln1), (ref.norm2, layer.ln2)):
                    a.weight.copy_(b.weight)
                    a.bias.copy_(b.bias)
            layers.append(ref)
        pad = torch.arange(37).view(1, 37) >= torch.tensor(self.lengths).view(3, 1)
        with torch.no_grad():
            h = m._embed(self.x)
            for ref in layers:
                h = ref(h, src_key_padding_mask=pad)
            want = m.head(m.final_ln(h)) * (~pad).unsqueeze(-1)
            got, computed, dense = m(self.x, self.lengths, AttentionSpec("dense"))
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        self.assertEqual(computed, dense)
        self.assertEqual(dense, 2 * 2 * sum(L * L for L in self.lengths))

    def test_denseFastPath_paddedBatch_equalsReference(self):
        with torch.no_grad():
            want, _, _ = self.model(self.x, self.lengths, AttentionSpec("dense"))
            got = self.model.forward_dense_fast(self.x, self.lengths)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)

    def test_everyPattern_paddedBatch_equalsEachSequenceAlone(self):
        x = self.x.clone()
        x[1, 20:] = 1e3   # garbage in the padding must not matter
        for pattern in PATTERNS:
            spec = AttentionSpec(pattern, 0.6, 4, 1, 99)
            with torch.no_grad():
                out, computed, dense = self.model(x, self.lengths, spec)
                total = 0
                for b, L in enumerate(self.lengths):
                    alone, c, _ = self.model(x[b:b + 1, :L], None, spec)
                    torch.testing.assert_close(out[b, :L], alone[0], rtol=1e-12, atol=1e-12)
                    self.assertEqual(float(out[b, L:].abs().sum()), 0.0, pattern)
                    total += c
            self.assertEqual(computed, total, pattern)

    def test_blockPatterns_singleBlock_equalDense(self):
        x = self.x[:, :8]
        with torch.no_grad():
            want, _, _ = self.model(x, None, AttentionSpec("dense"))
            for pattern in ("window", "longformer", "bigbird", "strided", "block-topk", "hybrid", "sampled"):
                got, computed, dense = self.model(x, None, AttentionSpec(pattern, 0.9, 8, 1, 3))
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=pattern)
                self.assertEqual(computed, dense)

    def test_fullBudgetPatterns_zeroSparsity_equalDense(self):
        with torch.no_grad():
            want, _, _ = self.model(self.x, self.lengths, AttentionSpec("dense"))
            for pattern in ("topk", "bigbird", "block-topk", "hybrid", "sampled"):
                got, computed, dense = self.model(self.x, self.lengths, AttentionSpec(pattern, 0.0, 8, 1, 3))
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=pattern)
                self.assertEqual(computed, dense, pattern)

    def test_densityCounts_everyPattern_matchBruteForceCount(self):
        spec_s, Bk, G = 0.7, 4, 1
        for pattern in ("dense", "window", "longformer", "bigbird", "strided", "topk", "gated"):
            spec = AttentionSpec(pattern, spec_s, Bk, G, 77)
            with torch.no_grad():
                _, computed, dense = self.model(self.x, self.lengths, spec)
            want = 0
            for L in self.lengths:
                n = math.ceil(L / Bk)
                for layer in range(2):
                    for h in range(2):
                        if pattern == "topk":
                            want += L * min(max(naive_round((1 - spec_s) * L), 1), L)
                        elif pattern == "gated":
                            want += min(max(naive_round((1 - spec_s) * L), 1), L) ** 2
                        else:
                            blocks = naive_key_blocks(pattern, spec_s, n, G, 77, layer, h)
                            want += sum(1 for i in range(L) for j in range(L) if (j // Bk) in blocks[i // Bk])
            self.assertEqual(computed, want, pattern)
            self.assertEqual(dense, 2 * 2 * sum(L * L for L in self.lengths))

    def test_gated_zeroSparsity_scalesAttentionByGate(self):
        # m = L: all tokens active, so each layer adds g_t * Attention(h)_t: differs from dense
        with torch.no_grad():
            dense, _, _ = self.model(self.x, None, AttentionSpec("dense"))
            gated, computed, total = self.model(self.x, None, AttentionSpec("gated", 0.0))
        self.assertEqual(computed, total)
        self.assertGreater(float((dense - gated).abs().max()), 1e-6)

    def test_gated_modelWithoutGates_isRejected(self):
        model = random_model(tiny(gated=False), seed=1)
        with self.assertRaises(ValueError):
            model(self.x.float(), None, AttentionSpec("gated", 0.5))

    def test_classification_paddedBatch_poolsValidPositionsOnly(self):
        cfg = tiny(input_kind="tokens", input_channels=0, vocab_size=7, head="classification", output_dim=4)
        model = random_model(cfg, seed=2).double()
        ids = torch.randint(0, 7, (2, 20))
        with torch.no_grad():
            out, _, _ = model(ids, [20, 9], AttentionSpec("window", 0.5, 4))
            alone, _, _ = model(ids[1:2, :9], None, AttentionSpec("window", 0.5, 4))
        self.assertEqual(tuple(out.shape), (2, 4))
        torch.testing.assert_close(out[1], alone[0], rtol=1e-12, atol=1e-12)


class SafetensorsTests(unittest.TestCase):
    def test_roundTrip_allWeightDtypes_preservesValuesWithinDtype(self):
        cfg = tiny(positional="learned")
        model = random_model(cfg, seed=4)
        with tempfile.TemporaryDirectory() as d:
            for dtype, tol in (("F32", 0.0), ("F16", 1e-3), ("BF16", 8e-3)):
                save_model(model, os.path.join(d, dtype), dtype=dtype)
                back = load_model(os.path.join(d, dtype))
                for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
                    err = float(((a - b).abs() / a.abs().clamp(min=1e-2)).max())
                    self.assertLessEqual(err, tol, f"{dtype} {name}")

    def test_header_written_isAlignedSortedAndContiguous(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.safetensors")
            write_safetensors(path, {"b": (np.arange(3, dtype=np.float32), "F32"),
                                     "a": (np.ones((2, 2), dtype=np.float32), "F16")}, {"k": "v"})
            with open(path, "rb") as f:
                raw = f.read()
            (n,) = struct.unpack("<Q", raw[:8])
            self.assertEqual(n % 8, 0)
            header = json.loads(raw[8:8 + n])
            self.assertEqual(header["__metadata__"], {"k": "v"})
            self.assertEqual(header["a"], {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]})
            self.assertEqual(header["b"], {"dtype": "F32", "shape": [3], "data_offsets": [8, 20]})
            self.assertEqual(len(raw), 8 + n + 20)
            tensors, meta = read_safetensors(path)
            np.testing.assert_array_equal(tensors["b"][0], np.arange(3, dtype=np.float32))

    def test_exportCli_randomModel_loadsAndRuns(self):
        import contextlib
        import io
        from export import main as export_main
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "m")
            with contextlib.redirect_stdout(io.StringIO()):
                export_main(["--random", "--out", out, "--d-model", "32", "--n-heads", "4", "--n-layers", "2",
                             "--d-ff", "64", "--input-channels", "8", "--max-seq-len", "128", "--dtype", "BF16"])
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                export_main(["--check", out])
            report = json.loads(buf.getvalue())
            self.assertEqual(report["output_shape"], [2, 32, 8])
            self.assertTrue(report["finite"])
            with open(os.path.join(out, "config.json")) as f:
                cfg = json.load(f)
            self.assertEqual((cfg["d_model"], cfg["n_layers"], cfg["format"]), (32, 2, "sparseinference-encoder"))

    def test_bf16_conversion_roundsToNearestEven(self):
        from safetensors_io import bf16_bits_to_float32, float32_to_bf16_bits
        values = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -2.5, 3.0e38], dtype=np.float32)
        back = bf16_bits_to_float32(float32_to_bf16_bits(values))
        np.testing.assert_array_equal(back, np.array([1.0, 1.0, 1.0 + 2 ** -6, -2.5, back[4]], dtype=np.float32))
        self.assertTrue(np.isfinite(back[4]))


class GoldenFixtureTests(unittest.TestCase):
    def test_committedFixtures_recomputed_matchStoredExpectations(self):
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "golden")
        manifest_path = os.path.join(root, "cases.json")
        if not os.path.exists(manifest_path):
            self.skipTest("no golden fixtures")
        with open(manifest_path) as f:
            manifest = json.load(f)
        models = {}
        for case in manifest["cases"]:
            if case["model"] not in models:
                models[case["model"]] = load_model(os.path.join(root, case["model"]), torch.float64)
            tensors, _ = read_safetensors(os.path.join(root, case["tensors"]))
            x = torch.from_numpy(tensors["input"][0].copy())
            x = x.double() if x.dtype == torch.float32 else x
            with torch.no_grad():
                out, computed, dense = models[case["model"]](
                    x, tensors["lengths"][0].tolist(), AttentionSpec.from_dict(case["attention"]))
            self.assertEqual(computed, case["computed_pairs"], case["id"])
            self.assertEqual(dense, case["dense_pairs"], case["id"])
            np.testing.assert_allclose(out.float().numpy(), tensors["expected_output"][0], rtol=0, atol=1e-6,
                                       err_msg=case["id"])


if __name__ == "__main__":
    unittest.main()

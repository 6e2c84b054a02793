#!/usr/bin/env python3
"""PyTorch eager peer for the whole-encoder GPU benchmark, run in the same session on the same GPU.

Reads model_ours.json and the model directory that `SparseInference.CudaSelfTest --model` wrote, loads the
very same weights (model.safetensors) into a BF16 eager encoder of the same architecture (pre-LN, exact GELU,
sinusoidal positions, reconstruction head), and times its forward at the same batch and length:
`scaled_dot_product_attention` for dense, compiled FlexAttention with a BlockMask built from the contract's
block selection (tools/reference/sparse_encoder.py `static_block_selection`, per layer) for the sparse
patterns. Before timing, each FlexAttention model is checked against the same model run with SDPA and the
equivalent boolean mask. Prints one table: peer ms / our ms (above 1 means ours is faster).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, flex_attention
from triton.testing import do_bench


def import_reference(paths):
    for p in paths:
        if p and os.path.isfile(os.path.join(p, "sparse_encoder.py")):
            sys.path.insert(0, p)
            break
    import safetensors_io  # noqa: E402
    import sparse_encoder  # noqa: E402
    return safetensors_io, sparse_encoder


class EagerEncoder:
    """The engine's forward in BF16 eager PyTorch (weights cast once), attention pluggable."""

    def __init__(self, tensors, cfg, dev, se):
        self.w = {k: torch.from_numpy(se_to_float(v)).to(dev, torch.bfloat16) for k, v in tensors.items()}
        self.cfg = cfg
        self.pos = se.sinusoidal_table(cfg["max_seq_len"], cfg["d_model"]).to(dev, torch.bfloat16)

    def forward(self, x, attend):
        w, c = self.w, self.cfg
        B, T, _ = x.shape
        d, H = c["d_model"], c["n_heads"]
        eps = c["layer_norm_eps"]
        x = F.linear(x, w["input_proj.weight"], w["input_proj.bias"]) + self.pos[:T]
        for i in range(c["n_layers"]):
            p = f"layers.{i}."
            h = F.layer_norm(x, (d,), w[p + "ln1.weight"], w[p + "ln1.bias"], eps)
            qkv = F.linear(h, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"])
            q, k, v = (t.view(B, T, H, d // H).transpose(1, 2) for t in qkv.split(d, dim=-1))
            o = attend(i, q, k, v).transpose(1, 2).reshape(B, T, d)
            x = x + F.linear(o, w[p + "attn.out.weight"], w[p + "attn.out.bias"])
            h = F.layer_norm(x, (d,), w[p + "ln2.weight"], w[p + "ln2.bias"], eps)
            x = x + F.linear(F.gelu(F.linear(h, w[p + "ff1.weight"], w[p + "ff1.bias"])), w[p + "ff2.weight"], w[p + "ff2.bias"])
        y = F.layer_norm(x, (d,), w["final_ln.weight"], w["final_ln.bias"], eps)
        return F.linear(y, w["head.weight"], w["head.bias"])


_io = None


def se_to_float(entry):
    array, _ = entry  # read_safetensors returns float values for every float dtype
    return array.astype("float32")


def selections(se, r, n_layers, n):
    spec = se.AttentionSpec.from_dict(dict(pattern=r["pattern"], sparsity=r["sparsity"], block_size=r["block_size"],
                                           global_blocks=r["global_blocks"], seed=r["seed"]))
    return [se.static_block_selection(spec, n, layer) for layer in range(n_layers)]


def block_mask_of(sel, B, H, T, bs, dev):
    n = sel.shape[0]
    counts = sel.sum(-1).to(torch.int32)
    order = torch.argsort((~sel).to(torch.int8), dim=-1, stable=True).to(torch.int32)  # selected blocks first, ascending
    counts = counts.view(1, 1, n).expand(B, H, n).contiguous().to(dev)
    kv_idx = order.view(1, 1, n, n).expand(B, H, n, n).contiguous().to(dev)
    zeros = torch.zeros_like(counts)
    kwargs = dict(full_kv_num_blocks=counts, full_kv_indices=kv_idx, BLOCK_SIZE=bs)
    try:
        return BlockMask.from_kv_blocks(zeros, kv_idx, seq_lengths=(T, T), **kwargs)
    except TypeError:
        return BlockMask.from_kv_blocks(zeros, kv_idx, **kwargs)


def rel_err(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


def main():
    global _io
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="folder with model_ours.json and model/")
    ap.add_argument("--reference", default=None, help="folder with sparse_encoder.py and safetensors_io.py")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    _io, se = import_reference([args.reference, os.path.join(here, "..", "..", "..", "tools", "reference")])

    dev = torch.device("cuda")
    with open(os.path.join(args.dir, "model_ours.json")) as f:
        ours = json.load(f)
    model_dir = os.path.join(args.dir, ours["model_dir"])
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    tensors, _ = _io.read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model = EagerEncoder(tensors, cfg, dev, se)
    flex = torch.compile(flex_attention, dynamic=False)
    torch.manual_seed(0)

    rows, out, failures = [], [], 0
    timed = {}  # one peer timing per config, shared by the rows of our product precisions
    for r in ours["results"]:
        if r["name"] in timed:
            peer, ms, err = timed[r["name"]]
            ratio = ms / r["ms"]
            rows.append((r["name"], r["products"], r["density"], r["ms"], peer, ms, ratio, err))
            out.append(dict(name=r["name"], products=r["products"], peer=peer, ms=ms, ours_ms=r["ms"], peer_over_ours=ratio, check_rel_err=err))
            continue
        B, T, bs = r["batch"], r["seq_len"], r["block_size"]
        H, L = cfg["n_heads"], cfg["n_layers"]
        x = (torch.rand(B, T, cfg["input_channels"], device=dev) * 2 - 1).to(torch.bfloat16)
        err = None
        if r["pattern"] == "dense":
            peer = "sdpa"
            attend = lambda i, q, k, v: F.scaled_dot_product_attention(q, k, v)  # noqa: E731
        else:
            peer = "flex"
            n = (T + bs - 1) // bs
            sels = selections(se, r, L, n)
            masks = [block_mask_of(s, B, H, T, bs, dev) for s in sels]
            attend = lambda i, q, k, v: flex(q, k, v, block_mask=masks[i])  # noqa: E731
            # The block masks are the pattern: the Flex model against SDPA with the boolean mask, one sequence.
            bools = [s.repeat_interleave(bs, 0)[:T].repeat_interleave(bs, 1)[:, :T].to(dev) for s in sels]
            with torch.no_grad():
                got = model.forward(x[:1], lambda i, q, k, v: flex(q, k, v, block_mask=block_mask_of(sels[i], 1, H, T, bs, dev)))
                want = model.forward(x[:1].float().to(torch.bfloat16),
                                     lambda i, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=bools[i]))
            err = rel_err(got, want)
            if not err < 1e-2:
                failures += 1
        with torch.no_grad():
            fn = lambda: model.forward(x, attend)  # noqa: E731
            y = fn()
            if not torch.isfinite(y).all():
                failures += 1
            ms = do_bench(fn, warmup=50, rep=300, return_mode="median")
        timed[r["name"]] = (peer, ms, err)
        ratio = ms / r["ms"]
        rows.append((r["name"], r["products"], r["density"], r["ms"], peer, ms, ratio, err))
        out.append(dict(name=r["name"], products=r["products"], peer=peer, ms=ms, ours_ms=r["ms"], peer_over_ours=ratio, check_rel_err=err))

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  (encoder {cfg['n_layers']} layers, d_model {cfg['d_model']}, "
          f"{cfg['n_heads']} heads, d_ff {cfg['d_ff']}; BF16 peer; median ms of the whole forward)")
    print(f"{'config':<12} {'ours':>8} {'density':>7} {'ours ms':>9} {'peer':>5} {'peer ms':>9} {'peer/ours':>9} {'peer chk':>9}")
    for name, prod, dens, oms, peer, ms, ratio, err in rows:
        chk = "-" if err is None else f"{err:.1e}"
        print(f"{name:<12} {prod:>8} {dens:>7.3f} {oms:>9.3f} {peer:>5} {ms:>9.3f} {ratio:>9.2f} {chk:>9}")
    if failures:
        print(f"peer check: {failures} failures (Flex model vs masked SDPA, or non-finite output)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

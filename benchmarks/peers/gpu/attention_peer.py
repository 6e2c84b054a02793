#!/usr/bin/env python3
"""PyTorch peer for the CUDA attention benchmark, run in the same session on the same GPU.

Reads the results and block layouts that tools/SparseInference.CudaSelfTest wrote (ours.json,
layout_*.json), times the same shapes with PyTorch -- scaled_dot_product_attention for dense,
compiled FlexAttention with a BlockMask built from the very same CSR layout for block-sparse --
checks FlexAttention against SDPA with the equivalent dense boolean mask, and prints one table
with ratios (peer time / our time: above 1 means ours is faster).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, flex_attention
from triton.testing import do_bench


def load_layout(path, device):
    with open(path) as f:
        lay = json.load(f)
    b, h, nq, nk, bs = lay["batch"], lay["heads"], lay["num_query_blocks"], lay["num_key_blocks"], lay["block_size"]
    offsets = torch.tensor(lay["offsets"], dtype=torch.int64)
    indices = torch.tensor(lay["indices"], dtype=torch.int64)
    counts = offsets[1:] - offsets[:-1]
    rows = torch.repeat_interleave(torch.arange(b * h * nq), counts)
    pos = torch.arange(indices.numel()) - offsets[rows]
    kv_idx = torch.zeros(b * h * nq, nk, dtype=torch.int32)
    kv_idx[rows, pos] = indices.to(torch.int32)
    selected = torch.zeros(b * h * nq, nk, dtype=torch.bool)
    selected[rows, indices] = True
    return dict(
        bs=bs,
        counts=counts.view(b, h, nq).to(torch.int32).to(device),
        kv_idx=kv_idx.view(b, h, nq, nk).to(device),
        selected=selected.view(b, h, nq, nk).to(device),
    )


def block_mask(lay, seq_len):
    """Every listed block is a full block: no mask inside blocks, as in our kernel."""
    zeros = torch.zeros_like(lay["counts"])
    kwargs = dict(full_kv_num_blocks=lay["counts"], full_kv_indices=lay["kv_idx"], BLOCK_SIZE=lay["bs"])
    try:
        return BlockMask.from_kv_blocks(zeros, lay["kv_idx"], seq_lengths=(seq_len, seq_len), **kwargs)
    except TypeError:
        return BlockMask.from_kv_blocks(zeros, lay["kv_idx"], **kwargs)


def rel_err(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="folder with ours.json and layout_*.json")
    ap.add_argument("--json-out", default=None, help="where to write the peer's results")
    args = ap.parse_args()

    dev = torch.device("cuda")
    torch.manual_seed(0)
    with open(os.path.join(args.dir, "ours.json")) as f:
        ours = json.load(f)
    flex = torch.compile(flex_attention, dynamic=False)
    rows, peer_out, failures = [], [], 0
    for r in ours:
        if r["kind"] == "ceiling":
            continue
        b, h, t, d = r["batch"], r["heads"], r["seq_len"], r["head_dim"]
        q = (torch.rand(b, h, t, d, device=dev) * 2 - 1).mul_(1.5).to(torch.bfloat16)
        k = (torch.rand(b, h, t, d, device=dev) * 2 - 1).mul_(1.5).to(torch.bfloat16)
        v = (torch.rand(b, h, t, d, device=dev) * 2 - 1).to(torch.bfloat16)
        if r["kind"] == "dense":
            peer = "sdpa"
            fn = lambda: F.scaled_dot_product_attention(q, k, v)
            err = None
        else:
            peer = "flex"
            lay = load_layout(os.path.join(args.dir, r["layout"]), dev)
            bm = block_mask(lay, t)
            fn = lambda: flex(q, k, v, block_mask=bm)
            # The mask really is the layout: FlexAttention against SDPA with the dense boolean mask
            # of the same blocks, on the first sequence's first 1024 queries.
            nq = min(t, 1024)
            out = fn()[:1, :, :nq]
            sel = lay["selected"][:1, :, : (nq + lay["bs"] - 1) // lay["bs"]]
            dense_mask = sel.repeat_interleave(lay["bs"], 2)[:, :, :nq].repeat_interleave(lay["bs"], 3)[..., :t]
            ref = F.scaled_dot_product_attention(q[:1, :, :nq].float(), k[:1].float(), v[:1].float(), attn_mask=dense_mask)
            err = rel_err(out, ref)
            if not err < 1e-2:
                failures += 1
        ms = do_bench(fn, warmup=25, rep=200, return_mode="median")
        flops = 4.0 * b * h * t * t * d * r["density"]
        rows.append((r["name"], r["density"], r["ms"], peer, ms, ms / r["ms"], r["tflops"], flops / (ms * 1e-3) / 1e12, err))
        peer_out.append(dict(name=r["name"], peer=peer, ms=ms, check_rel_err=err))

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(peer_out, f, indent=1)

    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  (BF16, heads 8, head dim 64, block 128; median ms)")
    print(f"{'config':<22} {'density':>7} {'ours ms':>9} {'peer':>5} {'peer ms':>9} {'peer/ours':>9} {'ours TF/s':>9} {'peer TF/s':>9} {'peer chk':>9}")
    for name, dens, ours_ms, peer, ms, ratio, otf, ptf, err in rows:
        chk = "-" if err is None else f"{err:.1e}"
        print(f"{name:<22} {dens:>7.3f} {ours_ms:>9.4f} {peer:>5} {ms:>9.4f} {ratio:>9.2f} {otf:>9.0f} {ptf:>9.0f} {chk:>9}")
    if failures:
        print(f"peer check: {failures} FlexAttention outputs disagreed with masked SDPA")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

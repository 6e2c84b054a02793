#!/usr/bin/env python3
"""Attention kernel lab for the GPU machine: compiles the embedded .cu sources with NVRTC (the same -D knobs
the backend passes), loads them through the driver API on PyTorch's primary context, checks them against a
float32 PyTorch reference on fresh random inputs (ragged lengths, dense and block-sparse, split rows) and
times them against scaled_dot_product_attention / FlexAttention in the same process.

    python3 tools/device/attention_lab.py --src DIR [--variants NAME,...] [--quick] [--out DIR]

Each variant is (file, function, defines); a variant that fails to compile or check is reported and skipped.
"""
import argparse
import ctypes
import glob
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------- libraries


def find_lib(pattern):
    for root in ["/usr/local", "/opt", "/usr/lib"] + sys.path:
        if not os.path.isdir(root):
            continue
        try:
            out = subprocess.run(["find", root, "-maxdepth", "8", "-name", pattern], capture_output=True, text=True, timeout=60).stdout.split()
        except Exception:
            out = []
        if out:
            return sorted(out)[0]
    return None


cuda = ctypes.CDLL("libcuda.so.1")
nvrtc_path = find_lib("libnvrtc.so.13*") or find_lib("libnvrtc.so.12*")
nvrtc = ctypes.CDLL(nvrtc_path)


def ck(r, what):
    if r != 0:
        s = ctypes.c_char_p()
        cuda.cuGetErrorString(r, ctypes.byref(s))
        raise RuntimeError(f"{what}: CUDA error {r} {s.value.decode() if s.value else ''}")


def nvrtc_compile(src, name, options):
    prog = ctypes.c_void_p()
    r = nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None)
    assert r == 0, r
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    r = nvrtc.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(prog, log)
    log = log.value.decode(errors="replace")
    if r != 0:
        raise RuntimeError(f"nvrtc failed ({r}):\n{log}")
    nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetCUBIN(prog, cubin)
    ptx = b""
    if nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size)) == 0:
        buf = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetPTX(prog, buf)
        ptx = buf.value
    return cubin.raw, log, ptx


class Params(ctypes.Structure):
    _fields_ = [("q", ctypes.c_uint64), ("k", ctypes.c_uint64), ("v", ctypes.c_uint64), ("o", ctypes.c_uint64)] + \
        [(f"{t}Stride{d}", ctypes.c_int64) for t in "qkvo" for d in "BHT"] + \
        [("seqLens", ctypes.c_uint64), ("blockOffsets", ctypes.c_uint64), ("blockIndices", ctypes.c_uint64),
         ("work", ctypes.c_uint64), ("partialO", ctypes.c_uint64), ("partialML", ctypes.c_uint64),
         ("batch", ctypes.c_int), ("heads", ctypes.c_int), ("seqLen", ctypes.c_int), ("layoutHeads", ctypes.c_int),
         ("blockSize", ctypes.c_int), ("numQueryBlocks", ctypes.c_int), ("scaleLog2", ctypes.c_float)]


class Kernel:
    def __init__(self, src_dir, file, func, defines, arch, smem, threads, query_tile):
        src = open(os.path.join(src_dir, file)).read()
        # attention_common.cuh sits beside the kernels (the backend splices it in; here NVRTC finds it on the path).
        opts = [f"--gpu-architecture={arch}", "--std=c++17", "-default-device", "--ptxas-options=-v", f"--include-path={src_dir}"] + [f"-D{d}" for d in defines]
        self.cubin, self.log, self.ptx = nvrtc_compile(src, file, opts)
        self.module = ctypes.c_void_p()
        ck(cuda.cuModuleLoadData(ctypes.byref(self.module), self.cubin), "cuModuleLoadData")
        self.f = ctypes.c_void_p()
        ck(cuda.cuModuleGetFunction(ctypes.byref(self.f), self.module, func.encode()), "cuModuleGetFunction")
        ck(cuda.cuFuncSetAttribute(self.f, 8, smem), "cuFuncSetAttribute(max dynamic smem)")
        regs, local = ctypes.c_int(), ctypes.c_int()
        cuda.cuFuncGetAttribute(ctypes.byref(regs), 4, self.f)
        cuda.cuFuncGetAttribute(ctypes.byref(local), 3, self.f)
        self.regs, self.local = regs.value, local.value
        self.smem, self.threads, self.query_tile = smem, threads, query_tile
        self.combine = None

    def launch(self, grid, params, stream):
        arg = ctypes.pointer(params)
        args = (ctypes.c_void_p * 1)(ctypes.cast(arg, ctypes.c_void_p))
        ck(cuda.cuLaunchKernel(self.f, grid[0], grid[1], grid[2], self.threads, 1, 1, self.smem, stream, args, None), "cuLaunchKernel")


# ---------------------------------------------------------------------------------------------- layouts


def budget(s, n):
    return min(max(int((1 - s) * n + 0.5), 1), n)


def window_sel(n, s):
    r = (budget(s, n) - 1) // 2
    i = torch.arange(n)
    return (i[:, None] - i[None, :]).abs() <= r


def bigbird_sel(n, s, g, gen):
    k = budget(s, n)
    sel = torch.zeros(n, n, dtype=torch.bool)
    sel[:g, :] = True
    for qb in range(g, n):
        for kb in range(n):
            if abs(kb - qb) <= 1 or kb < g:
                sel[qb, kb] = True
        extra = max(0, k - int(sel[qb].sum()))
        cand = (~sel[qb]).nonzero().flatten()
        if extra:
            pick = cand[torch.randperm(len(cand), generator=gen)[:extra]]
            sel[qb, pick] = True
    return sel


def csr(sel_bhn):
    """sel [B, H, n, n] bool -> offsets, indices (int32, CPU)."""
    b, h, n, _ = sel_bhn.shape
    flat = sel_bhn.reshape(b * h * n, n)
    counts = flat.sum(1)
    offsets = torch.zeros(b * h * n + 1, dtype=torch.int64)
    offsets[1:] = counts.cumsum(0)
    indices = flat.nonzero()[:, 1]
    return offsets.to(torch.int32), indices.to(torch.int32)


LPT = False


def plan_splits(offsets, batch, lheads, heads, nqb):
    rows = len(offsets) - 1
    off = offsets.tolist()
    mean = (off[-1]) / rows if rows else 0
    cap = max(4, int(-(-2 * mean // 1)))
    longest = max(off[r + 1] - off[r] for r in range(rows))
    if longest <= cap and not LPT:
        return None
    split, whole, combine, slots = [], [], [], 0
    for b in range(batch):
        for h in range(heads):
            for qb in range(nqb):
                lr = (b * lheads + (0 if lheads == 1 else h)) * nqb + qb
                s0, e0 = off[lr], off[lr + 1]
                row = (b * heads + h) * nqb + qb
                if e0 - s0 <= cap:
                    whole += [row, s0, e0, -1]
                    continue
                parts = (e0 - s0 + cap - 1) // cap
                combine += [row, slots, parts]
                for i in range(parts):
                    a = s0 + (e0 - s0) * i // parts
                    c = s0 + (e0 - s0) * (i + 1) // parts
                    split += [row, a, c, slots]
                    slots += 1
    if LPT:
        # Longest rows first (stable), so the last wave holds the short ones.
        items = [whole[i:i + 4] for i in range(0, len(whole), 4)]
        items.sort(key=lambda w: -(w[2] - w[1]))
        whole = [x for w in items for x in w]
    return split + whole, combine, slots


# ---------------------------------------------------------------------------------------------- running


class Case:
    """One attention call: tensors, lengths, layout (block selection [B,H,n,n] or None) and its device arrays."""

    def __init__(self, b, h, t, d, sel, lens, block, dev, layout_heads=None):
        self.b, self.h, self.t, self.d, self.block = b, h, t, d, block
        self.q = ((torch.rand(b, h, t, d, device=dev) * 2 - 1) * 1.5).to(torch.bfloat16)
        self.k = ((torch.rand(b, h, t, d, device=dev) * 2 - 1) * 1.5).to(torch.bfloat16)
        self.v = (torch.rand(b, h, t, d, device=dev) * 2 - 1).to(torch.bfloat16)
        self.lens = lens
        self.sel = sel
        self.lens_dev = torch.tensor(lens, dtype=torch.int32, device=dev) if lens is not None else None
        if sel is not None:
            off, idx = csr(sel)
            self.off, self.idx = off.to(dev), (idx if len(idx) else torch.zeros(1, dtype=torch.int32)).to(dev)
            self.lheads = sel.shape[1]
            nqb = sel.shape[2]
            self.plan = plan_splits(off, b, self.lheads, h, nqb)
            if self.plan:
                self.work = torch.tensor(self.plan[0], dtype=torch.int32, device=dev)
                self.comb = torch.tensor(self.plan[1] or [0], dtype=torch.int32, device=dev)
        else:
            self.plan = None

    def reference(self, rows=None):
        """float32 reference of queries [0, rows) of every (b, h), zeros past the valid length."""
        t = self.t
        nq = t if rows is None else min(rows, t)
        q, k, v = self.q[:, :, :nq].float(), self.k.float(), self.v.float()
        s = (q @ k.transpose(-1, -2)) / (self.d ** 0.5)
        mask = torch.ones(self.b, 1, nq, t, dtype=torch.bool, device=q.device)
        if self.sel is not None:
            bs = self.block
            m = self.sel.to(q.device).repeat_interleave(bs, 2)[:, :, :nq].repeat_interleave(bs, 3)[..., :t]
            mask = mask & m
        if self.lens is not None:
            L = torch.tensor(self.lens, device=q.device)
            keyok = torch.arange(t, device=q.device)[None, :] < L[:, None]
            mask = mask & keyok[:, None, None, :]
        s = s.masked_fill(~mask, float("-inf"))
        p = torch.softmax(s, -1).nan_to_num(0.0)
        out = p @ v
        if self.lens is not None:
            L = torch.tensor(self.lens, device=q.device)
            qok = torch.arange(nq, device=q.device)[None, :] < L[:, None]
            out = out * qok[:, None, :, None]
        return out

    def params(self, kern, o, partial):
        p = Params()
        p.q, p.k, p.v, p.o = self.q.data_ptr(), self.k.data_ptr(), self.v.data_ptr(), o.data_ptr()
        sb, sh, st = self.h * self.t * self.d, self.t * self.d, self.d
        for tname in "qkvo":
            setattr(p, f"{tname}StrideB", sb); setattr(p, f"{tname}StrideH", sh); setattr(p, f"{tname}StrideT", st)
        p.seqLens = self.lens_dev.data_ptr() if self.lens_dev is not None else 0
        p.batch, p.heads, p.seqLen = self.b, self.h, self.t
        qt = kern.query_tile
        if self.sel is not None:
            p.blockOffsets, p.blockIndices = self.off.data_ptr(), self.idx.data_ptr()
            p.layoutHeads, p.blockSize, p.numQueryBlocks = self.lheads, self.block, self.sel.shape[2]
        else:
            p.layoutHeads, p.blockSize, p.numQueryBlocks = self.h, 64, (self.t + qt - 1) // qt
        p.scaleLog2 = (1.0 / self.d ** 0.5) * 1.4426950408889634
        if self.plan:
            p.work = self.work.data_ptr()
            p.partialO, p.partialML = partial[0].data_ptr(), partial[1].data_ptr()
        return p

    def make_runner(self, kern, combine, o):
        stream = torch.cuda.current_stream().cuda_stream
        partial = None
        if self.plan:
            slots = max(1, self.plan[2])
            partial = (torch.empty(slots * kern.query_tile * self.d, device=o.device), torch.empty(slots * kern.query_tile * 2, device=o.device))
        p = self.params(kern, o, partial)
        keep = [partial]
        if self.plan:
            grid = (len(self.plan[0]) // 4, 1, 1)
            rows_ptr = ctypes.c_uint64(self.comb.data_ptr())
            cargs = (ctypes.c_void_p * 2)(ctypes.cast(ctypes.pointer(p), ctypes.c_void_p), ctypes.cast(ctypes.pointer(rows_ptr), ctypes.c_void_p))
            keep.append((rows_ptr, cargs))
            nsplit = len(self.plan[1]) // 3
        else:
            grid = ((self.t + kern.query_tile - 1) // kern.query_tile, self.h, self.b)
        arg = (ctypes.c_void_p * 1)(ctypes.cast(ctypes.pointer(p), ctypes.c_void_p))

        def run():
            keep  # noqa: B018 (keeps buffers alive)
            ck(cuda.cuLaunchKernel(kern.f, grid[0], grid[1], grid[2], kern.threads, 1, 1, kern.smem, ctypes.c_void_p(stream), arg, None), "launch")
            if self.plan and nsplit:
                ck(cuda.cuLaunchKernel(combine.f, nsplit, 1, 1, 256, 1, 1, 0, ctypes.c_void_p(stream), cargs, None), "launch combine")
        run.p = p
        return run


def rel_err(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


VARIANTS = {
    # name: (file, function, defines, arch, threads, query_tile, smem)
    "mma_v5": ("attention.cu", "attention_fwd", ["HEAD_DIM=64", "QUERY_TILE=128", "KEY_TILE=64", "USE_FP16=0", "M_TILES=2"], "sm_90", 128, 128, (128 * 64 + 2 * 2 * 64 * 64) * 2),
}


def sm90(name, qt=128, stages=2, minb=2, producer=0):
    """A build of attention_sm90.cu: the two-CTA block-sparse build (producer 0) or the warp-specialised one (producer 1).
    The sources carry these two only; the versions measured against them (docs/cuda-notes.md) are in the history."""
    VARIANTS[name] = ("attention_sm90.cu", "attention_fwd_sm90", [f"QUERY_TILE={qt}", f"STAGES={stages}", f"MIN_BLOCKS={minb}", "USE_FP16=0", f"PRODUCER={producer}"],
                      "sm_90a", (qt // 64 + producer) * 128, qt, qt * 128 + stages * 2 * 128 * 128 + 1024 + (256 if producer else 0))


sm90("wg_s2_2cta")                                         # w8, the block-sparse default
sm90("wg_s3_1cta", stages=3, minb=1)                       # w1
sm90("ws3_s4", qt=192, stages=4, minb=1, producer=1)       # w11, the dense default
sm90("ws_s4", qt=128, stages=4, minb=1, producer=1)        # w10's query tile with w11's loop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/lab-out"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--lpt", action="store_true", help="every sparse layout through a work list, longest rows first")
    args = ap.parse_args()
    global LPT
    LPT = args.lpt
    os.makedirs(args.out, exist_ok=True)
    dev = torch.device("cuda")
    torch.cuda.init()
    torch.empty(1, device=dev)
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__} nvrtc {nvrtc_path}", flush=True)
    gen = torch.Generator().manual_seed(int(time.time()))
    torch.manual_seed(int(time.time()))

    kernels = {}
    combine = {}
    for name in args.variants.split(","):
        file, func, defs, arch, threads, qt, smem = VARIANTS[name]
        try:
            k = Kernel(args.src, file, func, defs, arch, smem, threads, qt)
            kernels[name] = k
            combine[name] = Kernel(args.src, "attention.cu", "attention_combine", [f"HEAD_DIM=64", f"QUERY_TILE={qt}"], "sm_90", 0, 256, qt)
            warn = [l for l in k.log.splitlines() if "warn" in l.lower() or "spill" in l.lower() or "Used" in l or "C75" in l]
            print(f"[{name}] regs {k.regs} local {k.local} smem {smem}: " + " | ".join(warn[:6]), flush=True)
            with open(os.path.join(args.out, f"{name}.log"), "w") as f:
                f.write(k.log)
        except Exception as e:
            print(f"[{name}] BUILD FAILED: {e}", flush=True)
    # SASS: HGMMA present?
    for name, k in kernels.items():
        path = f"/tmp/{name}.cubin"
        open(path, "wb").write(k.cubin)
        tool = find_lib("cuobjdump") if name == next(iter(kernels)) else tool
        if tool:
            sass = subprocess.run([tool, "-sass", path], capture_output=True, text=True).stdout
            print(f"[{name}] SASS: HGMMA {sass.count('HGMMA')} HMMA {sass.count('HMMA')} LDL {sass.count('LDL')} STL {sass.count('STL')}")

    # ---- correctness
    bad = set()
    checks = []
    B = 128
    cases = [
        ("dense B2 H4 T1000 lens{1000,700}", lambda: Case(2, 4, 1000, 64, None, [1000, 700], B, dev)),
        ("dense B1 H2 T50", lambda: Case(1, 2, 50, 64, None, None, B, dev)),
        ("window50 B2 H3 T1000 lens{1000,333}", lambda: Case(2, 3, 1000, 64, window_sel(8, 0.5)[None, None].expand(2, 1, 8, 8).clone(), [1000, 333], B, dev)),
        ("bigbird75 B1 H2 T2048 (split rows)", lambda: Case(1, 2, 2048, 64, torch.stack([bigbird_sel(16, 0.75, 1, gen) for _ in range(2)])[None], None, B, dev)),
        ("bigbird90 B2 H2 T4096 lens{4096,3000} (split)", lambda: Case(2, 2, 4096, 64, torch.stack([torch.stack([bigbird_sel(32, 0.9, 1, gen) for _ in range(2)]) for _ in range(2)]), [4096, 3000], B, dev)),
    ]
    cases64 = [
        ("window50 bs64 B1 H2 T1000", lambda: Case(1, 2, 1000, 64, window_sel(16, 0.5)[None, None].expand(1, 2, 16, 16).clone(), None, 64, dev)),
        ("dense bs64 B1 H2 T300 lens{200}", lambda: Case(1, 2, 300, 64, None, [200], 64, dev)),
    ]
    for cname, make in cases + cases64:
        c = make()
        ref = c.reference()
        for name, k in kernels.items():
            if (c.block == 64) != (k.query_tile == 64) and c.sel is not None:
                continue
            if c.sel is None and (k.query_tile == 64) != (c.block == 64):
                continue
            if c.sel is not None and k.query_tile != c.block:
                continue
            for rep in range(2):
                o = torch.full_like(c.q, float("nan"))
                run = c.make_runner(k, combine[name], o)
                run()
                torch.cuda.synchronize()
                e = rel_err(o, ref)
                ok = e < 1e-2 and not torch.isnan(o).any().item()
                if rep == 0:
                    first = o.clone()
                else:
                    ok = ok and torch.equal(first, o)
                checks.append((name, cname, rep, e, ok))
                if not ok:
                    bad.add(name)
                print(f"check [{name}] {cname} run{rep}: rel err {e:.2e} {'ok' if ok else 'FAIL'}", flush=True)
    if args.no_bench:
        return 1 if bad else 0

    # ---- timing
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
    from triton.testing import do_bench
    flex = torch.compile(flex_attention, dynamic=False)
    configs = []
    for (b, t) in ([(8, 4096), (1, 16384)] if not args.quick else [(8, 4096)]):
        n = t // B
        configs.append((f"dense b{b} t{t}", b, t, None))
        for s in (0.5, 0.75, 0.9):
            configs.append((f"window{int(s * 100)} b{b} t{t}", b, t, window_sel(n, s)[None, None].expand(b, 1, n, n).clone()))
        bb = bigbird_sel(n, 0.9, 1, gen)
        configs.append((f"bigbird90 b{b} t{t}", b, t, bb[None, None].expand(b, 1, n, n).clone()))
    rows = []
    for cname, b, t, sel in configs:
        c = Case(b, 8, t, 64, sel, None, B, dev)
        density = 1.0 if sel is None else sel.float().mean().item()
        flops = 4.0 * b * 8 * t * t * 64 * density
        # peer
        if sel is None:
            fn = lambda: F.scaled_dot_product_attention(c.q, c.k, c.v)
            peer = "sdpa"
        else:
            off, idx = csr(sel)
            nq = sel.shape[2]
            counts = (off[1:] - off[:-1]).view(b, 1, nq).to(torch.int32).to(dev)
            kv = torch.zeros(b * nq, nq, dtype=torch.int32)
            for r in range(b * nq):
                ids = idx[off[r]:off[r + 1]]
                kv[r, :len(ids)] = ids
            kv = kv.view(b, 1, nq, nq).to(dev)
            zeros = torch.zeros_like(counts)
            try:
                bm = BlockMask.from_kv_blocks(zeros, kv, full_kv_num_blocks=counts, full_kv_indices=kv, BLOCK_SIZE=B, seq_lengths=(t, t))
            except TypeError:
                bm = BlockMask.from_kv_blocks(zeros, kv, full_kv_num_blocks=counts, full_kv_indices=kv, BLOCK_SIZE=B)
            fn = lambda: flex(c.q, c.k, c.v, block_mask=bm)
            peer = "flex"
        pms = do_bench(fn, warmup=25, rep=200, return_mode="median")
        ref = c.reference(rows=512)
        line = [cname, f"{density:.3f}", peer, f"{pms:.4f}", f"{flops / pms / 1e9:.0f}"]
        res = {}
        for name, k in kernels.items():
            if name in bad or (k.query_tile != B and not (sel is None and k.query_tile == 192)):
                continue
            o = torch.full_like(c.q, float("nan"))
            run = c.make_runner(k, combine[name], o)
            run()
            torch.cuda.synchronize()
            e = rel_err(o[:, :, :512], ref)
            ok = e < 1e-2 and not torch.isnan(o).any().item()
            ms = do_bench(run, warmup=25, rep=200, return_mode="median")
            res[name] = (ms, e, ok)
            line.append(f"{name}:{ms:.4f}ms {flops / ms / 1e9:.0f}TF x{pms / ms:.2f}{'' if ok else ' FAIL%.1e' % e}")
        rows.append(line)
        print("  ".join(line), flush=True)
    with open(os.path.join(args.out, "lab.json"), "w") as f:
        json.dump(dict(checks=checks, rows=rows), f, indent=1)
    print("\nsummary (peer/ours > 1: ours faster)")
    for line in rows:
        print("  ".join(line))
    print("failed variants:", sorted(bad) or "none")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

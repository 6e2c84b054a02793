using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;
using SparseInference.Tensors.Cuda;

namespace SparseInference.CudaSelfTest;

/// <summary>
/// Every op <see cref="CudaComputeBackend"/> supports, run through the <see cref="IComputeBackend"/>
/// contract on the GPU and on the CPU reference backend with the same fresh random inputs; GPU
/// outputs start as NaN so an unwritten element fails. To add an op: a method here calling
/// <see cref="Compare"/> on both backends' outputs, and a line in <see cref="RunAll"/>.
/// </summary>
internal sealed class ContractChecks(CudaComputeBackend gpu, SelfChecks report, int seed)
{
    private const double Fp32Tolerance = 1e-5;
    private const double Bf16Tolerance = 1e-2;
    private readonly CpuBackend cpu = new();
    private readonly Random rng = new(seed);

    public void RunAll()
    {
        Guard(() => Linear(rows: 300, inFeatures: 64, outFeatures: 256, Activation.Gelu));
        Guard(() => Linear(rows: 77, inFeatures: 256, outFeatures: 64, Activation.None));
        Guard(BatchedMatMulTransposedAWithBeta);
        Guard(() => Unary("bias_add", (b, x, y) => b.BiasAdd(x, Bias(b, x), y)));
        Guard(() => Unary("add", (b, x, y) => b.Add(x, x, y)));
        Guard(() => Unary("scale", (b, x, y) => b.Scale(x, -0.37f, y)));
        Guard(() => Unary("gelu", (b, x, y) => b.Gelu(x, y)));
        Guard(() => Unary("sigmoid", (b, x, y) => b.Sigmoid(x, y)));
        Guard(() => Unary("softmax", (b, x, y) => b.Softmax(x, y)));
        Guard(() => Unary("layer_norm", (b, x, y) => b.LayerNorm(x, Bias(b, x), Bias(b, x, offset: 1), 1e-5f, y)));
        Guard(ConvertRoundTrip);
        Guard(EmbeddingAndGather);
        Guard(ScatterAddRows);
        Guard(TopKWithTies);
        Guard(() => PackedAttention(batch: 3, seqLen: 200, heads: 4, headDim: 16, blockSize: 16, lengths: [200, 130, 17]));
        Guard(() => PackedAttention(batch: 2, seqLen: 512, heads: 2, headDim: 32, blockSize: 32, lengths: [512, 300]));
        Guard(() => PackedAttention(batch: 2, seqLen: 1000, heads: 4, headDim: 64, blockSize: 128, lengths: []));
        Guard(() => PackedAttention(batch: 2, seqLen: 300, heads: 4, headDim: 64, blockSize: 0, lengths: [300, 45]));
        // The small-head kernel: the default sensor model's 4 heads of 8 over 64-step windows, dense and blocks of 8.
        Guard(() => PackedAttention(batch: 5, seqLen: 64, heads: 4, headDim: 8, blockSize: 0, lengths: [64, 64, 23, 64, 1]));
        Guard(() => PackedAttention(batch: 3, seqLen: 64, heads: 4, headDim: 8, blockSize: 8, lengths: [64, 37, 64]));

        // BF16-input products: cuBLASLt with the bias in the epilogue, GELU with the output's BF16 copy, and the
        // kept BF16 copies of operands, which must follow every write of the tensor they copy.
        // With BFloat16, non-accumulating products keep their output in BF16 until an FP32 read.
        foreach (var precision in new[] { CudaMatMulPrecision.BFloat16Inputs, CudaMatMulPrecision.BFloat16 })
        {
            using var bf16 = new CudaComputeBackend(gpu.Gpu, new CudaBackendOptions { MatMulPrecision = precision }, ownsDevice: false);
            Guard(() => Linear(rows: 300, inFeatures: 64, outFeatures: 256, Activation.Gelu, bf16));
            Guard(() => Linear(rows: 77, inFeatures: 256, outFeatures: 64, Activation.None, bf16));
            Guard(() => Linear(rows: 33, inFeatures: 40, outFeatures: 31, Activation.Gelu, bf16));
            Guard(() => Bf16CopiesFollowWrites(bf16));
            Guard(() => LayerNormRead(bf16));
            Guard(() => Bf16EncoderChain(bf16, batch: 2, seqLen: 256, heads: 4, headDim: 32, lengths: [256, 201]));
        }

        Guard(EpilogueGelu);
    }

    /// <summary>
    /// cuBLASLt's GELU epilogue (BFloat16 products, <see cref="CudaComputeBackend.GeluInEpilogue"/>) against the exact
    /// erf GELU of the CPU, next to the same product with the exact GELU pass: the difference of the two errors is what
    /// the epilogue's GELU form adds to BF16 rounding. Inputs spread so that pre-activations cover [−6, 6].
    /// </summary>
    private void EpilogueGelu()
    {
        const int rows = 2048, inFeatures = 256, outFeatures = 512;
        var x = Random((long)rows * inFeatures, 2f);
        var w = Random((long)outFeatures * inFeatures, 0.15f);
        var bias = Random(outFeatures, 1f);
        using var cx = cpu.FromHost(x, rows, inFeatures);
        using var cw = cpu.FromHost(w, outFeatures, inFeatures);
        using var cb = cpu.FromHost(bias, outFeatures);
        using var cy = cpu.Allocate(rows, outFeatures);
        cpu.Linear(cx, cw, cb, cy, Activation.Gelu);
        var want = cy.ToArray<float>();
        var errors = new double[2];
        var maxAbs = new double[2];
        for (var i = 0; i < 2; i++)
        {
            using var be = new CudaComputeBackend(gpu.Gpu, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16, GeluInEpilogue = i == 1 }, ownsDevice: false);
            using var gx = be.FromHost(x, rows, inFeatures);
            using var gw = be.FromHost(w, outFeatures, inFeatures);
            using var gb = be.FromHost(bias, outFeatures);
            using var gy = Poisoned(be, rows, outFeatures);
            be.Linear(gx, gw, gb, gy, Activation.Gelu);
            var got = gy.ToArray<float>();
            errors[i] = Compare(got, want);
            maxAbs[i] = got.Zip(want, (g, e) => Math.Abs((double)g - e)).Max();
        }

        report.Report("contract BFloat16 linear, GELU in the cuBLASLt epilogue vs exact erf GELU", errors[1], Bf16Tolerance,
            FormattableString.Invariant($" (exact GELU pass: rel err {errors[0]:E2}, max abs {maxAbs[0]:E2}; epilogue: max abs {maxAbs[1]:E2})"));
    }

    private void Guard(Action check)
    {
        try
        {
            check();
        }
        catch (Exception ex) when (ex is CudaException or NotSupportedException or ArgumentException)
        {
            report.Report($"contract: {ex.GetType().Name}: {ex.Message}", double.NaN, 0);
        }
    }

    private float[] Random(long n, float scale = 2f)
    {
        var x = new float[n];
        for (long i = 0; i < n; i++)
        {
            x[i] = ((rng.NextSingle() * 2) - 1) * scale;
        }

        return x;
    }

    // The same host data on both backends, found again by (backend, shape) inside one check.
    private readonly Dictionary<string, float[]> hostData = [];

    private Tensor Bias(IComputeBackend b, Tensor x, int offset = 0)
    {
        var key = $"bias{x.Dim(-1)}+{offset}";
        if (!hostData.TryGetValue(key, out var data))
        {
            hostData[key] = data = Random(x.Dim(-1), 1f);
        }

        return b.FromHost(data, x.Dim(-1));
    }

    private static Tensor Poisoned(IComputeBackend b, params int[] dims)
    {
        var nan = new float[new Shape(dims).ElementCount];
        Array.Fill(nan, float.NaN);
        return b.FromHost(nan, dims);
    }

    private void Compare(string name, Tensor gpuOut, Tensor cpuOut, double tolerance, string extra = "")
    {
        var got = gpuOut.ToArray<float>();
        var want = cpuOut.ToArray<float>();
        report.Report("contract " + name, Compare(got, want), tolerance, extra);
    }

    private static double Compare(float[] got, float[] want) => SparseInference.CudaSelfTest.Compare.RelativeError(got, want);

    private void Unary(string name, Action<IComputeBackend, Tensor, Tensor> op)
    {
        hostData.Clear();
        var x = Random(123 * 97);
        using var gx = gpu.FromHost(x, 123, 97);
        using var cx = cpu.FromHost(x, 123, 97);
        using var gy = Poisoned(gpu, 123, 97);
        using var cy = cpu.Allocate(123, 97);
        op(gpu, gx, gy);
        op(cpu, cx, cy);
        Compare($"{name} [123, 97]", gy, cy, Fp32Tolerance);
    }

    private void Linear(int rows, int inFeatures, int outFeatures, Activation activation, CudaComputeBackend? on = null)
    {
        var be = on ?? gpu;
        var tolerance = on is null ? Fp32Tolerance : Bf16Tolerance;
        var x = Random((long)rows * inFeatures);
        var w = Random((long)outFeatures * inFeatures, 0.2f);
        var bias = Random(outFeatures, 1f);
        using var gx = be.FromHost(x, 1, rows, inFeatures);
        using var gw = be.FromHost(w, outFeatures, inFeatures);
        using var gb = be.FromHost(bias, outFeatures);
        using var gy = Poisoned(be, 1, rows, outFeatures);
        using var cx = cpu.FromHost(x, 1, rows, inFeatures);
        using var cw = cpu.FromHost(w, outFeatures, inFeatures);
        using var cb = cpu.FromHost(bias, outFeatures);
        using var cy = cpu.Allocate(1, rows, outFeatures);
        be.Linear(gx, gw, gb, gy, activation);
        cpu.Linear(cx, cw, cb, cy, activation);
        Compare($"linear{(on is null ? "" : " " + on.MatMulPrecision)} [{rows}x{inFeatures}]·W[{outFeatures}x{inFeatures}]ᵀ + b, {activation}", gy, cy, tolerance);
    }

    private void BatchedMatMulTransposedAWithBeta()
    {
        const int batch = 3, m = 40, n = 50, k = 60;
        var a = Random((long)batch * k * m);
        var b = Random((long)batch * k * n);
        var c0 = Random((long)batch * m * n);
        var options = new MatMulOptions(TransposeA: true, Alpha: 0.5f, Beta: 2f);
        using var ga = gpu.FromHost(a, batch, k, m);
        using var gb = gpu.FromHost(b, batch, k, n);
        using var gc = gpu.FromHost(c0, batch, m, n);
        using var ca = cpu.FromHost(a, batch, k, m);
        using var cb = cpu.FromHost(b, batch, k, n);
        using var cc = cpu.FromHost(c0, batch, m, n);
        gpu.MatMul(ga, gb, gc, options);
        cpu.MatMul(ca, cb, cc, options);
        Compare($"matmul batched {batch}x Aᵀ[{k}x{m}]·B[{k}x{n}], alpha 0.5, beta 2", gc, cc, Fp32Tolerance);
    }

    private void ConvertRoundTrip()
    {
        var x = Random(10_001, 50f);
        using var gx = gpu.FromHost(x, 10_001);
        using var gh = gpu.Allocate(new Shape(10_001), DType.BF16, zeroed: false);
        using var gy = Poisoned(gpu, 10_001);
        gpu.Convert(gx, gh);
        gpu.Convert(gh, gy);
        var want = Bf16.ToFloats(Bf16.FromFloats(x));
        report.Report("contract convert F32 → BF16 → F32 [10001]", Compare(gy.ToArray<float>(), want), 0);
    }

    private void EmbeddingAndGather()
    {
        var table = Random(50 * 33);
        var ids = Enumerable.Range(0, 7 * 9).Select(_ => rng.Next(50)).ToArray();
        using var gt = gpu.FromHost(table, 50, 33);
        using var gi = gpu.FromHost(ids, 7, 9);
        using var go = Poisoned(gpu, 7, 9, 33);
        using var ct = cpu.FromHost(table, 50, 33);
        using var ci = cpu.FromHost(ids, 7, 9);
        using var co = cpu.Allocate(7, 9, 33);
        gpu.Embedding(gt, gi, go);
        cpu.Embedding(ct, ci, co);
        Compare("embedding [50, 33] by ids [7, 9]", go, co, 0);

        var source = Random(40 * 3 * 5);
        var rows = Enumerable.Range(0, 17).Select(_ => rng.Next(40)).ToArray();
        using var gs = gpu.FromHost(source, 40, 3, 5);
        using var gr = gpu.FromHost(rows, 17);
        using var gg = Poisoned(gpu, 17, 3, 5);
        using var cs = cpu.FromHost(source, 40, 3, 5);
        using var cr = cpu.FromHost(rows, 17);
        using var cg = cpu.Allocate(17, 3, 5);
        gpu.Gather(gs, gr, gg);
        cpu.Gather(cs, cr, cg);
        Compare("gather [40, 3, 5] rows [17]", gg, cg, 0);

        var bad = (int[])rows.Clone();
        bad[3] = 40;
        using var gb = gpu.FromHost(bad, 17);
        var rejected = false;
        try
        {
            gpu.Gather(gs, gb, gg);
        }
        catch (ArgumentException ex) when (ex.Message.Contains("indices[3]", StringComparison.Ordinal))
        {
            rejected = true;
        }

        report.Report("contract gather rejects index 40 of a 40-row source by name", rejected ? 0 : double.NaN, 0);
    }

    private void ScatterAddRows()
    {
        var source = Random(10 * 6);
        var dest = Random(25 * 6);
        var scale = Random(10, 1f);
        var rows = Enumerable.Range(0, 25).OrderBy(_ => rng.Next()).Take(10).ToArray();
        using var gs = gpu.FromHost(source, 10, 6);
        using var gi = gpu.FromHost(rows, 10);
        using var gscale = gpu.FromHost(scale, 10);
        using var gd = gpu.FromHost(dest, 25, 6);
        using var cs = cpu.FromHost(source, 10, 6);
        using var ci = cpu.FromHost(rows, 10);
        using var cscale = cpu.FromHost(scale, 10);
        using var cd = cpu.FromHost(dest, 25, 6);
        gpu.ScatterAddRows(gs, gi, gd, gscale);
        cpu.ScatterAddRows(cs, ci, cd, cscale);
        Compare("scatter_add_rows [10, 6] into [25, 6], row scale", gd, cd, Fp32Tolerance);
    }

    private void TopKWithTies()
    {
        const int rows = 37, n = 100, k = 13;
        // Values on a coarse grid so that ties occur; ties must go to the lower index.
        var x = Enumerable.Range(0, rows * n).Select(_ => (float)rng.Next(-20, 20)).ToArray();
        using var gx = gpu.FromHost(x, rows, n);
        using var gv = Poisoned(gpu, rows, k);
        using var gi = gpu.Allocate(new Shape(rows, k), DType.I32);
        using var cx = cpu.FromHost(x, rows, n);
        using var cv = cpu.Allocate(rows, k);
        using var ci = cpu.Allocate(new Shape(rows, k), DType.I32);
        gpu.TopK(gx, k, gv, gi);
        cpu.TopK(cx, k, cv, ci);
        var sameIndices = gi.ToArray<int>().SequenceEqual(ci.ToArray<int>());
        report.Report($"contract top_k k{k} of [{rows}, {n}] with ties (indices {(sameIndices ? "equal" : "DIFFER")})",
            sameIndices ? Compare(gv.ToArray<float>(), cv.ToArray<float>()) : double.NaN, 0);
    }

    /// <summary>
    /// Attention from a packed [B, T, 3·H·d] qkv into [B, T, H·d] (the model's path) with a window
    /// layout shared across heads (blockSize 0: dense), against the CPU backend.
    /// </summary>
    private void PackedAttention(int batch, int seqLen, int heads, int headDim, int blockSize, int[] lengths)
    {
        var width = heads * headDim;
        var qkv = Random((long)batch * seqLen * 3 * width, 1.5f);
        using var gq = gpu.FromHost(qkv, batch, seqLen, 3 * width);
        using var cq = cpu.FromHost(qkv, batch, seqLen, 3 * width);
        using var go = Poisoned(gpu, batch, seqLen, width);
        using var co = cpu.Allocate(batch, seqLen, width);
        BlockLayout? layout = null;
        if (blockSize > 0)
        {
            var n = BlockLayout.BlocksFor(seqLen, blockSize);
            var builder = new BlockLayout.Builder(blockSize, batch, heads, n, sharedAcrossHeads: true);
            for (var b = 0; b < batch; b++)
            {
                for (var qb = 0; qb < n; qb++)
                {
                    builder.AddRow(Enumerable.Range(Math.Max(0, qb - 1), Math.Min(n, qb + 2) - Math.Max(0, qb - 1)).Append(0).Distinct().ToArray());
                }
            }

            layout = builder.Build();
        }

        var gr = gpu.AttentionPacked(gq, go, heads, lengths, layout);
        var cr = cpu.AttentionPacked(cq, co, heads, lengths, layout);
        var pairs = gr == cr ? "" : $" PAIRS DIFFER gpu {gr} cpu {cr}";
        var err = Compare(go.ToArray<float>(), co.ToArray<float>());
        report.Report(
            $"contract attention packed B{batch} T{seqLen} H{heads} d{headDim} {(blockSize > 0 ? $"window bs{blockSize}" : "dense")} lens[{string.Join(',', lengths)}]",
            pairs.Length > 0 ? double.NaN : err, Bf16Tolerance, $" density {gr.Density:F3}{pairs}");
    }

    /// <summary>
    /// A weight and an input are used in a BF16 product (their copies are kept), then overwritten — the weight from
    /// the host, the input in place by an op — and used again: the second product must see the new values.
    /// </summary>
    private void Bf16CopiesFollowWrites(CudaComputeBackend bf16)
    {
        const int rows = 64, inFeatures = 96, outFeatures = 48;
        var x = Random((long)rows * inFeatures);
        var w1 = Random((long)outFeatures * inFeatures, 0.2f);
        var w2 = Random((long)outFeatures * inFeatures, 0.2f);
        using var gx = bf16.FromHost(x, rows, inFeatures);
        using var gw = bf16.FromHost(w1, outFeatures, inFeatures);
        using var gy = Poisoned(bf16, rows, outFeatures);
        bf16.Linear(gx, gw, null, gy);
        gw.Upload<float>(w2);
        bf16.Scale(gx, -0.5f, gx);
        bf16.Linear(gx, gw, null, gy);

        // Part of the output rewritten in place (with BFloat16 the rest still lives in the BF16 copy only).
        using (var top = gy.SliceRows(0, 10))
        {
            bf16.Scale(top, 3f, top);
        }

        using var cx = cpu.FromHost(x, rows, inFeatures);
        using var cw = cpu.FromHost(w2, outFeatures, inFeatures);
        using var cy = cpu.Allocate(rows, outFeatures);
        cpu.Scale(cx, -0.5f, cx);
        cpu.Linear(cx, cw, null, cy);
        using (var top = cy.SliceRows(0, 10))
        {
            cpu.Scale(top, 3f, top);
        }

        Compare($"{bf16.MatMulPrecision}: copies follow writes (weight re-uploaded, input scaled in place, output rows rescaled)", gy, cy, Bf16Tolerance);
    }

    /// <summary>LayerNorm read back as FP32 (with BFloat16 products its output is kept in BF16 until this read).</summary>
    private void LayerNormRead(CudaComputeBackend bf16)
    {
        var x = Random(300 * 512);
        var gamma = Random(512, 1f);
        var beta = Random(512, 0.5f);
        using var gx = bf16.FromHost(x, 300, 512);
        using var gg = bf16.FromHost(gamma, 512);
        using var gb = bf16.FromHost(beta, 512);
        using var gy = Poisoned(bf16, 300, 512);
        using var cx = cpu.FromHost(x, 300, 512);
        using var cg = cpu.FromHost(gamma, 512);
        using var cb = cpu.FromHost(beta, 512);
        using var cy = cpu.Allocate(300, 512);
        bf16.LayerNorm(gx, gg, gb, 1e-5f, gy);
        cpu.LayerNorm(cx, cg, cb, 1e-5f, cy);
        Compare($"{bf16.MatMulPrecision}: layer_norm [300, 512] read back as FP32", gy, cy, Bf16Tolerance);
    }

    /// <summary>
    /// One encoder layer's op sequence with BF16 products (LayerNorm → qkv → attention → output projection accumulated
    /// into the residual → LayerNorm → GELU feed-forward accumulated), twice over the same buffers, against the CPU.
    /// </summary>
    private void Bf16EncoderChain(CudaComputeBackend bf16, int batch, int seqLen, int heads, int headDim, int[] lengths)
    {
        int d = heads * headDim, ff = 4 * d, rows = batch * seqLen;
        var x0 = Random((long)rows * d);
        var weights = new (string Name, int[] Shape, float[] Data)[]
        {
            ("ln.g", [d], Random(d, 1f)), ("ln.b", [d], Random(d, 0.2f)),
            ("qkv.w", [3 * d, d], Random(3L * d * d, 0.1f)), ("qkv.b", [3 * d], Random(3 * d, 0.1f)),
            ("out.w", [d, d], Random((long)d * d, 0.1f)), ("out.b", [d], Random(d, 0.1f)),
            ("ff1.w", [ff, d], Random((long)ff * d, 0.1f)), ("ff1.b", [ff], Random(ff, 0.1f)),
            ("ff2.w", [d, ff], Random((long)d * ff, 0.05f)), ("ff2.b", [d], Random(d, 0.1f)),
        };
        var n = BlockLayout.BlocksFor(seqLen, 64);
        var builder = new BlockLayout.Builder(64, batch, heads, n, sharedAcrossHeads: true);
        for (var b = 0; b < batch; b++)
        {
            for (var qb = 0; qb < n; qb++)
            {
                builder.AddRow(Enumerable.Range(Math.Max(0, qb - 1), Math.Min(n, qb + 2) - Math.Max(0, qb - 1)).Append(0).Distinct().ToArray());
            }
        }

        var layout = builder.Build();
        float[] Run(IComputeBackend be)
        {
            var w = weights.ToDictionary(t => t.Name, t => be.FromHost(t.Data, t.Shape));
            try
            {
                using var x = be.FromHost(x0, rows, d);
                using var h = be.Allocate(rows, d);
                using var qkv = be.Allocate(rows, 3 * d);
                using var attended = be.Allocate(rows, d);
                using var hidden = be.Allocate(rows, ff);
                var accumulate = new MatMulOptions(TransposeB: true, Beta: 1f);
                for (var layer = 0; layer < 2; layer++)
                {
                    be.LayerNorm(x, w["ln.g"], w["ln.b"], 1e-5f, h);
                    be.Linear(h, w["qkv.w"], w["qkv.b"], qkv);
                    using (var packed = qkv.Reshape(batch, seqLen, 3 * d))
                    using (var output = attended.Reshape(batch, seqLen, d))
                    {
                        be.AttentionPacked(packed, output, heads, lengths, layer == 0 ? layout : null);
                    }

                    be.MatMul(attended, w["out.w"], x, accumulate, w["out.b"]);
                    be.LayerNorm(x, w["ln.g"], w["ln.b"], 1e-5f, h);
                    be.Linear(h, w["ff1.w"], w["ff1.b"], hidden, Activation.Gelu);
                    be.MatMul(hidden, w["ff2.w"], x, accumulate, w["ff2.b"]);
                }

                return x.ToArray<float>();
            }
            finally
            {
                foreach (var t in w.Values)
                {
                    t.Dispose();
                }
            }
        }

        var got = Run(bf16);
        var want = Run(cpu);

        // Padding rows (past each valid length) carry no attention output; compare the valid rows.
        var valid = new List<long>();
        for (var b = 0; b < batch; b++)
        {
            for (long i = (long)b * seqLen * d; i < ((long)b * seqLen + lengths[b]) * d; i++)
            {
                valid.Add(i);
            }
        }

        report.Report($"contract {bf16.MatMulPrecision} encoder layer ×2 B{batch} T{seqLen} H{heads} d{headDim} (window, then dense) lens[{string.Join(',', lengths)}]",
            SparseInference.CudaSelfTest.Compare.RelativeError(got, want, valid), Bf16Tolerance);
    }
}

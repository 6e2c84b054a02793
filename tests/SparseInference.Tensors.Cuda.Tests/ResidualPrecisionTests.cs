using System.Runtime.InteropServices;
using SparseInference.Models;
using SparseInference.Models.Formats;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Cuda.Tests;

/// <summary>
/// The BF16 residual stream of the CUDA backend (IComputeBackend.ResidualDType, docs/model-format.md "Precision"):
/// the settings without a GPU; on a GPU the BF16 ops against the CPU backend and the whole encoder against the FP32
/// CPU engine within the contract's BF16 tolerance.
/// </summary>
public sealed class ResidualPrecisionTests
{
    /// <summary>The contract's tolerance for BF16 products and a BF16 residual: relative L2 error of a whole output.</summary>
    private const double Bf16Tolerance = 1e-2;

    [Theory]
    [InlineData(CudaMatMulPrecision.BFloat16, true, DType.BF16)]
    [InlineData(CudaMatMulPrecision.BFloat16, false, DType.F32)]
    [InlineData(CudaMatMulPrecision.BFloat16Inputs, true, DType.F32)]
    [InlineData(CudaMatMulPrecision.Float32, true, DType.F32)]
    public void ResidualDTypeFor_PrecisionAndSwitch_IsBf16OnlyForBf16Outputs(CudaMatMulPrecision precision, bool bf16Residual, DType expected) =>
        Assert.Equal(expected, CudaComputeBackend.ResidualDTypeFor(precision, bf16Residual));

    [Theory]
    [InlineData(TensorOp.Add)]
    [InlineData(TensorOp.LayerNorm)]
    [InlineData(TensorOp.MatMul)]
    [InlineData(TensorOp.ScatterAddRows)]
    [InlineData(TensorOp.Embedding)]
    [InlineData(TensorOp.Convert)]
    [InlineData(TensorOp.Copy)]
    public void SupportsOp_ResidualStreamOps_TakeBf16(TensorOp op) => Assert.True(CudaComputeBackend.SupportsOp(op, DType.BF16));

    [Theory]
    [InlineData(TensorOp.Attention)]
    [InlineData(TensorOp.Gelu)]
    [InlineData(TensorOp.BiasAdd)]
    [InlineData(TensorOp.Softmax)]
    [InlineData(TensorOp.TopK)]
    public void SupportsOp_OpsOutsideTheResidualStream_RejectBf16(TensorOp op) => Assert.False(CudaComputeBackend.SupportsOp(op, DType.BF16));

    [Fact]
    public void Options_Defaults_Float32ProductsGeluInEpilogueBf16ResidualWithBf16Products()
    {
        var options = new CudaBackendOptions();

        Assert.Equal(CudaMatMulPrecision.Float32, options.MatMulPrecision);
        Assert.True(options.GeluInEpilogue);
        Assert.True(options.BFloat16Residual);
    }

    [GpuFact]
    public void ResidualDType_BFloat16Options_IsBf16ThroughTheContract()
    {
        Assert.True(CudaDevice.TryCreate(out var device, out var reason), reason);
        using var gpu32 = new CudaComputeBackend(device!);
        using var gpu16 = new CudaComputeBackend(device!, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16 }, ownsDevice: false);

        Assert.Equal(DType.F32, ((IComputeBackend)gpu32).ResidualDType);
        Assert.Equal(DType.BF16, ((IComputeBackend)gpu16).ResidualDType);
    }

    [GpuFact]
    public void LayerNorm_Bf16Rows_MatchesCpuOnWidenedRows()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        using (var cpu = new CpuBackend())
        {
            var g = gpu!;
            // 512 columns take the vector kernel, 96 the generic one; both with FP32 and with BF16 output.
            foreach (var cols in new[] { 512, 96 })
            {
                const int rows = 70;
                var rng = new Random(cols);
                var bits = Bf16Bits(Enumerable.Range(0, rows * cols).Select(_ => (float)((rng.NextDouble() * 6) - 2)).ToArray());
                var gamma = Enumerable.Range(0, cols).Select(_ => (float)(0.5 + rng.NextDouble())).ToArray();
                var beta = Enumerable.Range(0, cols).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
                using var gx = Bf16Tensor(g, bits, rows, cols);
                using var gg = g.FromHost(gamma, cols);
                using var gb = g.FromHost(beta, cols);
                using var gy = g.FromHost(Enumerable.Repeat(float.NaN, rows * cols).ToArray(), rows, cols);
                using var gy16 = Bf16Tensor(g, Enumerable.Repeat((ushort)0x7FC0, rows * cols).ToArray(), rows, cols);
                g.LayerNorm(gx, gg, gb, 1e-5f, gy);
                g.LayerNorm(gx, gg, gb, 1e-5f, gy16);

                using var cx = cpu.FromHost(Widen(bits), rows, cols);
                using var cg = cpu.FromHost(gamma, cols);
                using var cb = cpu.FromHost(beta, cols);
                using var cy = cpu.Allocate(rows, cols);
                cpu.LayerNorm(cx, cg, cb, 1e-5f, cy);
                var want = cy.ToArray<float>();

                var got = gy.ToArray<float>();
                Assert.DoesNotContain(got, float.IsNaN);
                Assert.True(RelativeError(got, want) <= 1e-5, $"cols {cols}, FP32 output: relative error {RelativeError(got, want):E2}");
                var got16 = Widen(ReadBf16(gy16));
                Assert.DoesNotContain(got16, float.IsNaN);
                Assert.True(RelativeError(got16, want) <= 4e-3, $"cols {cols}, BF16 output: relative error {RelativeError(got16, want):E2}");
            }
        }
    }

    [GpuFact]
    public void MatMul_AccumulateIntoBf16C_MatchesCpuOnWidenedC()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        using (var cpu = new CpuBackend())
        {
            const int rows = 256, inFeatures = 256, outFeatures = 128;
            var rng = new Random(23);
            float[] Random(int n, float scale) => Enumerable.Range(0, n).Select(_ => (float)(((rng.NextDouble() * 2) - 1) * scale)).ToArray();
            var x = Random(rows * inFeatures, 1f);
            var w = Random(outFeatures * inFeatures, 0.1f);
            var b = Random(outFeatures, 0.5f);
            var c0 = Bf16Bits(Random(rows * outFeatures, 2f));
            using var cx = cpu.FromHost(x, rows, inFeatures);
            using var cw = cpu.FromHost(w, outFeatures, inFeatures);
            using var cb = cpu.FromHost(b, outFeatures);
            using var cc = cpu.FromHost(Widen(c0), rows, outFeatures);
            cpu.MatMul(cx, cw, cc, new MatMulOptions(TransposeB: true, Beta: 1f), cb);
            var want = cc.ToArray<float>();

            // cuBLASLt with BF16 C (BFloat16 products), and the widen-compute-round fallback (FP32 products).
            foreach (var precision in new[] { CudaMatMulPrecision.BFloat16, CudaMatMulPrecision.Float32 })
            {
                using var be = new CudaComputeBackend(gpu!.Gpu, new CudaBackendOptions { MatMulPrecision = precision }, ownsDevice: false);
                using var gx = be.FromHost(x, rows, inFeatures);
                using var gw = be.FromHost(w, outFeatures, inFeatures);
                using var gb = be.FromHost(b, outFeatures);
                using var gc = Bf16Tensor(be, c0, rows, outFeatures);
                be.MatMul(gx, gw, gc, new MatMulOptions(TransposeB: true, Beta: 1f), gb);
                var got = Widen(ReadBf16(gc));
                var err = RelativeError(got, want);
                Assert.DoesNotContain(got, float.IsNaN);
                Assert.True(err <= Bf16Tolerance, $"{precision}: relative error {err:E2} > {Bf16Tolerance:E0}");
                // The result was stored in BF16, so it cannot be closer than half a BF16 step on average.
                Assert.True(err > 1e-4, $"{precision}: relative error {err:E2}: the output does not look rounded to BF16");
            }
        }
    }

    [GpuFact]
    public void Linear_SmallInnerDimensionWithBf16Products_IsComputedInFp32()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16 }), reason);
        using (gpu)
        using (var cpu = new CpuBackend())
        {
            var g = gpu!;
            const int rows = 300, outFeatures = 96;
            var rng = new Random(41);
            float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2) - 1)).ToArray();

            // K = 8 takes the FP32 small-K kernel (BF16 operands would be ~3e-3 off); K = 17 the BF16 tensor cores.
            foreach (var k in new[] { 8, CudaComputeBackend.SmallK + 1 })
            {
                var x = Random(rows * k);
                var w = Random(outFeatures * k);
                var b = Random(outFeatures);
                var c0 = Bf16Bits(Random(rows * outFeatures));
                using var cx = cpu.FromHost(x, rows, k);
                using var cw = cpu.FromHost(w, outFeatures, k);
                using var cb = cpu.FromHost(b, outFeatures);
                using var cy = cpu.Allocate(rows, outFeatures);
                using var cc = cpu.FromHost(Widen(c0), rows, outFeatures);
                cpu.Linear(cx, cw, cb, cy);
                cpu.MatMul(cx, cw, cc, new MatMulOptions(TransposeB: true, Beta: 1f), cb);

                using var gx = g.FromHost(x, rows, k);
                using var gw = g.FromHost(w, outFeatures, k);
                using var gb = g.FromHost(b, outFeatures);
                using var gy = g.FromHost(Enumerable.Repeat(float.NaN, rows * outFeatures).ToArray(), rows, outFeatures);
                using var gc = Bf16Tensor(g, c0, rows, outFeatures);
                g.Linear(gx, gw, gb, gy);
                g.MatMul(gx, gw, gc, new MatMulOptions(TransposeB: true, Beta: 1f), gb);

                var got = gy.ToArray<float>();
                var err = RelativeError(got, cy.ToArray<float>());
                Assert.DoesNotContain(got, float.IsNaN);
                Assert.True(k <= CudaComputeBackend.SmallK ? err <= 1e-5 : err is > 1e-4 and <= Bf16Tolerance, $"K {k}, FP32 output: relative error {err:E2}");
                var errC = RelativeError(Widen(ReadBf16(gc)), cc.ToArray<float>());
                Assert.True(errC <= Bf16Tolerance, $"K {k}, BF16 C accumulated: relative error {errC:E2}");
            }
        }
    }

    [GpuFact]
    public void Add_Bf16PlusF32IntoBf16_IsTheRoundedFp32Sum()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            const int n = 1000;
            var rng = new Random(3);
            var a = Bf16Bits(Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 20) - 10)).ToArray());
            var b = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            var g = gpu!;
            using var ga = Bf16Tensor(g, a, n);
            using var gb = g.FromHost(b, n);
            g.Add(ga, gb, ga);

            var got = ReadBf16(ga);
            var wa = Widen(a);
            var want = Bf16Bits(Enumerable.Range(0, n).Select(i => wa[i] + b[i]).ToArray());
            Assert.Equal(want, got);
        }
    }

    [GpuFact]
    public void Forward_Bf16ResidualEncoder_MatchesCpuEngineWithinBf16Tolerance()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16 }), reason);
        var dir = Path.Combine(Path.GetTempPath(), "si-bf16-residual-" + Guid.NewGuid().ToString("N"));
        try
        {
            const int channels = 8, dModel = 128, heads = 2, layers = 3, dFf = 512, time = 320, batch = 2;
            RandomModelWriter.Write(dir, channels, dModel, heads, layers, dFf, time, channels, seed: 99);
            using (gpu)
            using (var cpuModel = EncoderModel.Load(dir))
            {
                var g = gpu!;
                Assert.Equal(DType.BF16, g.ResidualDType);
                using var model = EncoderModel.Load(dir, g);
                var rng = new Random(Environment.TickCount);
                var input = new ForwardInput
                {
                    Batch = batch, Time = time, Lengths = [time, 201],
                    Values = Enumerable.Range(0, batch * time * channels).Select(_ => (float)((rng.NextDouble() * 2) - 1)).ToArray(),
                };

                foreach (var spec in new[] { new AttentionSpec("dense", 0, 64), new AttentionSpec("window", 0.5, 64), new AttentionSpec("bigbird", 0.75, 64, 1, 2) })
                {
                    var want = cpuModel.Forward(input, spec);
                    var got = model.Forward(input, spec);
                    Assert.Equal(want.ComputedPairs, got.ComputedPairs);
                    Assert.DoesNotContain(got.Output, v => !float.IsFinite(v));
                    var err = RelativeError(got.Output, want.Output);
                    Assert.True(err <= Bf16Tolerance, $"{spec.Pattern}: relative error {err:E2} > {Bf16Tolerance:E0}");
                }
            }
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static Tensor Bf16Tensor(CudaComputeBackend gpu, ushort[] bits, params int[] dims)
    {
        var t = gpu.Allocate(new Shape(dims), DType.BF16, zeroed: false);
        gpu.CopyFromHost(MemoryMarshal.AsBytes<ushort>(bits), t);
        return t;
    }

    private static ushort[] ReadBf16(Tensor t)
    {
        var bits = new ushort[t.ElementCount];
        t.Backend.CopyToHost(t, MemoryMarshal.AsBytes(bits.AsSpan()));
        return bits;
    }

    /// <summary>Round to nearest even, as the contract stores BF16.</summary>
    private static ushort[] Bf16Bits(float[] values) => values.Select(v =>
    {
        var u = BitConverter.SingleToUInt32Bits(v);
        return (ushort)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }).ToArray();

    private static float[] Widen(ushort[] bits) => bits.Select(h => BitConverter.UInt32BitsToSingle((uint)h << 16)).ToArray();

    private static double RelativeError(float[] got, float[] want)
    {
        double num = 0, den = 0;
        for (var i = 0; i < want.Length; i++)
        {
            double d = got[i] - want[i];
            num += d * d;
            den += (double)want[i] * want[i];
        }

        return Math.Sqrt(num / den);
    }
}

using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests.Cpu;

public sealed class CpuBackendElementwiseTests
{
    [Fact]
    public void Add_OddLength_MatchesReferenceAndWorksInPlace()
    {
        using var backend = new CpuBackend(2);
        var a = TestData.Uniform(1, 3 * 1001);
        var b = TestData.Uniform(2, 3 * 1001);
        using var ta = backend.FromHost(a, 3, 1001);
        using var tb = backend.FromHost(b, 3, 1001);

        backend.Add(ta, tb, ta);

        TestData.AssertClose(a.Select((x, i) => (double)x + b[i]).ToArray(), ta.ToArray<float>(), 1e-6, 0, "a+b");
    }

    [Fact]
    public void BiasAdd_Rank3_AddsBiasToEveryRow()
    {
        using var backend = new CpuBackend(2);
        var x = TestData.Uniform(3, 2 * 5 * 19);
        var bias = TestData.Uniform(4, 19);
        using var tx = backend.FromHost(x, 2, 5, 19);
        using var tb = backend.FromHost(bias, 19);
        using var ty = backend.Allocate(2, 5, 19);

        backend.BiasAdd(tx, tb, ty);

        TestData.AssertClose(x.Select((v, i) => (double)v + bias[i % 19]).ToArray(), ty.ToArray<float>(), 1e-6, 0, "y");
    }

    [Fact]
    public void Scale_MultipliesEveryElement()
    {
        using var backend = new CpuBackend(1);
        var x = TestData.Uniform(5, 37);
        using var tx = backend.FromHost(x, 37);
        using var ty = backend.Allocate(37);

        backend.Scale(tx, -2.5f, ty);

        TestData.AssertClose(x.Select(v => -2.5 * v).ToArray(), ty.ToArray<float>(), 1e-6, 0, "y");
    }

    [Fact]
    public void Gelu_WideRange_MatchesErfFormWithin1e6()
    {
        using var backend = new CpuBackend(2);
        var x = TestData.Uniform(6, 10_007, -9f, 9f);
        using var tx = backend.FromHost(x, 10_007);
        using var ty = backend.Allocate(10_007);

        backend.Gelu(tx, ty);

        // Absolute near zero, relative for large |z| where 0.5·z·(1+erf) ≈ z.
        TestData.AssertClose(x.Select(v => Reference.Gelu(v)).ToArray(), ty.ToArray<float>(), 1e-6, 1e-6, "gelu");
    }

    [Fact]
    public void Sigmoid_MatchesReference()
    {
        using var backend = new CpuBackend(2);
        var x = TestData.Uniform(7, 999, -20f, 20f);
        using var tx = backend.FromHost(x, 999);
        using var ty = backend.Allocate(999);

        backend.Sigmoid(tx, ty);

        TestData.AssertClose(x.Select(v => Reference.Sigmoid(v)).ToArray(), ty.ToArray<float>(), 1e-6, 1e-5, "sigmoid");
    }

    [Fact]
    public void Convert_F16AndBF16ToF32_ExactForRepresentableValues()
    {
        using var backend = new CpuBackend(1);
        float[] values = [0f, 1f, -2.5f, 0.125f, 256f, -3.75f];
        using var half = backend.FromHost(values.Select(v => (Half)v).ToArray(), 6);
        var bf16Bits = values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray();
        using var bf16 = backend.Allocate(new Shape(6), DType.BF16);
        backend.CopyFromHost(System.Runtime.InteropServices.MemoryMarshal.AsBytes(bf16Bits.AsSpan()), bf16);
        using var f1 = backend.Allocate(6);
        using var f2 = backend.Allocate(6);

        backend.Convert(half, f1);
        backend.Convert(bf16, f2);

        Assert.Equal(values, f1.ToArray<float>());
        Assert.Equal(values, f2.ToArray<float>());
    }

    [Fact]
    public void Add_ShapeMismatch_ThrowsNamingB()
    {
        using var backend = new CpuBackend(1);
        using var a = backend.Allocate(2, 3);
        using var b = backend.Allocate(3, 2);

        var ex = Assert.Throws<ArgumentException>(() => backend.Add(a, b, a));

        Assert.Equal("b", ex.ParamName);
    }
}

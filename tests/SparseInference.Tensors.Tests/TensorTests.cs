using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests;

public sealed class TensorTests
{
    [Fact]
    public void SliceRows_ViewSharesStorageAtOffset()
    {
        using var backend = new CpuBackend(1);
        using var t = backend.FromHost(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), 4, 3);

        var view = t.SliceRows(1, 2);

        Assert.Equal(new Shape(2, 3), view.Shape);
        Assert.Equal([3f, 4f, 5f, 6f, 7f, 8f], view.ToArray<float>());
    }

    [Fact]
    public void Reshape_WrongElementCount_Throws()
    {
        using var backend = new CpuBackend(1);
        using var t = backend.Allocate(4, 3);

        Assert.Throws<ArgumentException>(() => t.Reshape(5, 2));
    }

    [Fact]
    public void FromHost_LengthMismatch_ThrowsNamingData()
    {
        using var backend = new CpuBackend(1);

        var ex = Assert.Throws<ArgumentException>(() => backend.FromHost(new float[5], 2, 3));

        Assert.Equal("data", ex.ParamName);
    }

    [Fact]
    public void Supports_CpuBackend_ReportsF32OpsAndRejectsF16Matmul()
    {
        using var backend = new CpuBackend(1);

        Assert.True(backend.Supports(TensorOp.MatMul, DType.F32));
        Assert.True(backend.Supports(TensorOp.Attention, DType.F32));
        Assert.False(backend.Supports(TensorOp.MatMul, DType.F16));
        Assert.True(backend.Supports(TensorOp.Convert, DType.BF16));
    }
}

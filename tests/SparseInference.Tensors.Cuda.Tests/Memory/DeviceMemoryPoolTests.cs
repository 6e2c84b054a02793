using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Tests.Memory;

public class DeviceMemoryPoolTests
{
    [Theory]
    [InlineData(1, 256)]
    [InlineData(256, 256)]
    [InlineData(257, 512)]
    [InlineData(1_000_000, 1L << 20)]
    [InlineData(2L << 20, 2L << 20)]
    [InlineData((2L << 20) + 1, 4L << 20)]
    [InlineData(5L << 20, 6L << 20)]
    public void SizeClass_RoundsUpToClass(long bytes, long expected) => Assert.Equal(expected, DeviceMemoryPool.SizeClass(bytes));

    [Fact]
    public void SizeClass_NonPositive_Throws() => Assert.Throws<ArgumentOutOfRangeException>(() => DeviceMemoryPool.SizeClass(0));
}

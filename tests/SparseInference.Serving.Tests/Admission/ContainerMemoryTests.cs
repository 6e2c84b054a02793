using SparseInference.Serving.Admission;

namespace SparseInference.Serving.Tests.Admission;

public sealed class ContainerMemoryTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("si-cgroup-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void ReadLimitBytes_CgroupV2Limit_ReturnsIt()
    {
        File.WriteAllText(Path.Combine(_root, "memory.max"), "2147483648\n");
        Assert.Equal(2147483648L, ContainerMemory.ReadLimitBytes(_root));
    }

    [Fact]
    public void ReadLimitBytes_CgroupV2Max_NoLimit()
    {
        File.WriteAllText(Path.Combine(_root, "memory.max"), "max\n");
        Assert.Null(ContainerMemory.ReadLimitBytes(_root));
    }

    [Fact]
    public void ReadLimitBytes_CgroupV1Limit_ReturnsIt()
    {
        Directory.CreateDirectory(Path.Combine(_root, "memory"));
        File.WriteAllText(Path.Combine(_root, "memory", "memory.limit_in_bytes"), "1073741824\n");
        Assert.Equal(1073741824L, ContainerMemory.ReadLimitBytes(_root));
    }

    [Fact]
    public void ReadLimitBytes_CgroupV1Unlimited_NoLimit()
    {
        Directory.CreateDirectory(Path.Combine(_root, "memory"));
        File.WriteAllText(Path.Combine(_root, "memory", "memory.limit_in_bytes"), "9223372036854771712\n");
        Assert.Null(ContainerMemory.ReadLimitBytes(_root));
    }

    [Fact]
    public void ReadLimitBytes_NoCgroupFiles_NoLimit()
    {
        Assert.Null(ContainerMemory.ReadLimitBytes(_root));
    }

    [Fact]
    public void DefaultBudgetBytes_LimitOrPhysical_TakesItsFraction()
    {
        Assert.Equal(1L << 30, ContainerMemory.DefaultBudgetBytes(2L << 30, 64L << 30));
        Assert.Equal(16L << 30, ContainerMemory.DefaultBudgetBytes(null, 64L << 30));
    }
}

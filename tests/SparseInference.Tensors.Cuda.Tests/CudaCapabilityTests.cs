using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Tests;

/// <summary>
/// The optional capabilities a server reads through the backend contract (<see cref="IDeviceMemory"/>,
/// <see cref="IDeviceFaultClassifier"/>) and the provider it opens CUDA through. GPU cases are skipped with the backend's
/// reason where no GPU is usable (CI).
/// </summary>
public sealed class CudaCapabilityTests
{
    [GpuFact]
    public void DeviceMemory_AfterAllocatingWeights_DriverCountAndWeightBytesGrow()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var backend, out var reason), reason);
        using var cuda = backend!;
        IDeviceMemory memory = cuda;

        var (freeBefore, total) = memory.DeviceMemory();
        var useBefore = memory.MemoryUse();
        const long elements = 64L * 1024 * 1024; // 256 MiB of FP32 weights
        using var weights = cuda.Allocate(new Shape((int)elements), DType.F32, zeroed: true, MemoryCategory.Weights);
        var (freeAfter, totalAfter) = memory.DeviceMemory();
        var useAfter = memory.MemoryUse();

        Assert.Equal(cuda.Gpu.Info.TotalMemoryBytes, total);
        Assert.Equal(total, totalAfter);
        Assert.InRange(total - freeAfter, 1, total);
        // The driver's count grows by at least the allocation (the pool may round up).
        Assert.True(freeBefore - freeAfter >= elements * 4, $"used grew by {freeBefore - freeAfter} bytes for a {elements * 4}-byte allocation");
        Assert.Equal(elements * 4, useAfter.WeightBytes - useBefore.WeightBytes);
    }

    [GpuFact]
    public void TryOpen_CudaDevice_OpensBf16ServingBackendAndDescribesIt()
    {
        Assert.True(new CudaBackendProvider().TryOpen(new ComputeDevice(DeviceKind.Cuda, 0), out var backend, out var description), description);
        using var opened = backend;

        var cuda = Assert.IsType<CudaComputeBackend>(opened);
        Assert.Equal("cuda:0", cuda.Name);
        Assert.Equal(CudaMatMulPrecision.BFloat16, cuda.MatMulPrecision);
        Assert.Equal(new CudaBackendOptions().MaxRecordedForwards, ((IForwardRecorder)cuda).MaxRecordedForwards);
        Assert.Contains("sm_", description, StringComparison.Ordinal);
    }

    [Fact]
    public void ServingOptions_Bf16ProductsOnTheOrdinalWithRecordedForwardsAtTheirDefault()
    {
        var options = CudaBackendProvider.ServingOptions(1);

        Assert.Equal(1, options.Device.Ordinal);
        Assert.Equal(CudaMatMulPrecision.BFloat16, options.MatMulPrecision);
        // CUDA graphs stay on for serving: the default (SPARSEINFERENCE_CUDA_GRAPHS or 8), not turned off here.
        Assert.Equal(new CudaBackendOptions().MaxRecordedForwards, options.MaxRecordedForwards);
        Assert.False(options.FusedLayers);
    }

    [NoDriverFact]
    public void TryOpen_NoDriver_FalseWithTheReasonInsteadOfThrowing()
    {
        Assert.False(new CudaBackendProvider().TryOpen(new ComputeDevice(DeviceKind.Cuda, 0), out var backend, out var description));
        Assert.Null(backend);
        Assert.Contains("libcuda", description, StringComparison.Ordinal);
    }

    [GpuFact]
    public void IsDeviceFault_CudaErrorsCountOthersDoNot()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var backend, out var reason), reason);
        using var cuda = backend!;
        IDeviceFaultClassifier faults = cuda;

        Assert.True(faults.IsDeviceFault(new CudaException("cuLaunchKernel", 700, "CUDA_ERROR_ILLEGAL_ADDRESS")));
        Assert.False(faults.IsDeviceFault(new InvalidOperationException("bug for one input")));
        Assert.False(faults.IsDeviceFault(new NotSupportedException("op")));
    }
}

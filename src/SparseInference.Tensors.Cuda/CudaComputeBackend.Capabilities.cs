namespace SparseInference.Tensors.Cuda;

/// <summary>The optional capabilities a server reads through the backend contract: device memory and device faults.</summary>
public sealed partial class CudaComputeBackend : IDeviceMemory, IDeviceFaultClassifier
{
    /// <summary><c>cuMemGetInfo</c> of this backend's device.</summary>
    public (long FreeBytes, long TotalBytes) DeviceMemory() => Gpu.DeviceMemoryInfo();

    /// <summary>The pool's statistics by use; cached = reserved from the driver but not rented.</summary>
    public DeviceMemoryUse MemoryUse()
    {
        var statistics = MemoryStatistics;
        return new DeviceMemoryUse(statistics.WeightBytes, statistics.WorkspaceBytes, statistics.ActivationBytes,
            Math.Max(0, statistics.ReservedBytes - statistics.InUseBytes));
    }

    /// <summary>
    /// Every failed driver, cuBLAS or NVRTC call counts. One that a request caused (an allocation too large once) does not
    /// restart the process: the count resets at the next forward that succeeds.
    /// </summary>
    public bool IsDeviceFault(Exception exception) => exception is CudaException;
}

namespace SparseInference.Tensors.Cuda;

/// <summary>What the device says about itself.</summary>
public sealed record CudaDeviceInfo(
    int Ordinal, string Name, int ComputeMajor, int ComputeMinor, int MultiprocessorCount,
    long TotalMemoryBytes, long L2CacheBytes, int DriverVersion, string NvrtcVersion, int CublasVersion)
{
    /// <summary>Whether the device has the sm_90a instructions the Hopper attention kernel uses (compute capability 9.0).</summary>
    public bool HasWgmma => ComputeMajor == 9 && ComputeMinor == 0;
}

using SparseInference.Tensors.Cuda.Compilation;

namespace SparseInference.Tensors.Cuda;

/// <summary>Which GPU <see cref="CudaDevice"/> opens and where it keeps compiled kernels. Checked when the device opens.</summary>
public sealed record CudaDeviceOptions
{
    /// <summary>The defaults: GPU 0, kernels cached under <see cref="KernelCacheKey.DefaultDirectory"/>.</summary>
    public static CudaDeviceOptions Default { get; } = new();

    /// <summary>CUDA device ordinal (0 … count − 1).</summary>
    public int Ordinal { get; init; }

    /// <summary>Folder of the on-disk kernel cache; null for <see cref="KernelCacheKey.DefaultDirectory"/>.</summary>
    public string? KernelCacheDirectory { get; init; }

    internal void Validate()
    {
        if (Ordinal < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Ordinal), Ordinal, "Ordinal: expected a device ordinal ≥ 0.");
        }
    }
}

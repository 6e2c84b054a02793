using System.Diagnostics.CodeAnalysis;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// Opens the CUDA backend for a <c>cuda</c> / <c>cuda:N</c> device, set up for serving. Nothing native is loaded until
/// <see cref="TryOpen"/> is called, so a host that registers this provider and runs on the CPU never loads CUDA's libraries.
/// When CUDA cannot be used the reason comes back instead of an exception, so the caller can fall back to the CPU.
/// </summary>
public sealed class CudaBackendProvider : IComputeBackendProvider
{
    public DeviceKind Kind => DeviceKind.Cuda;

    public bool TryOpen(ComputeDevice device, [NotNullWhen(true)] out IComputeBackend? backend, out string description)
    {
        if (device.Kind != DeviceKind.Cuda)
        {
            throw new ArgumentException($"device: expected a CUDA device, actual '{device}'", nameof(device));
        }

        backend = null;
        string? reason;
        CudaComputeBackend? cuda;
        try
        {
            if (!CudaComputeBackend.TryCreate(out cuda, out reason, ServingOptions(device.Ordinal)) || cuda is null)
            {
                description = (reason ?? "unknown reason").TrimEnd('.');
                return false;
            }
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or CudaException)
        {
            description = ex.Message.TrimEnd('.');
            return false;
        }

        description = $"{cuda.Gpu.Describe()}; models load onto the GPU, BF16 matrix products with FP32 accumulation, BF16 activations between products, "
            + (cuda.MaxRecordedForwards > 0 ? $"up to {cuda.MaxRecordedForwards} recorded forwards (CUDA graphs) a model" : $"recorded forwards off ({CudaBackendOptions.RecordedForwardsVariable}=0)");
        backend = cuda;
        return true;
    }

    /// <summary>
    /// Serving runs as a BF16 model does: products on the BF16 tensor cores with FP32 accumulation, and outputs that feed
    /// only the next product (and LayerNorm's) kept in BF16 until something reads them as FP32 (3.6e-3 relative error
    /// against the FP32 CPU engine, 1.2x faster than BF16 operands with FP32 outputs; docs/benchmarks.md, GPU whole-model
    /// forward). Recorded forwards (CUDA graphs) keep their default (<see cref="CudaBackendOptions.MaxRecordedForwards"/>).
    /// </summary>
    public static CudaBackendOptions ServingOptions(int ordinal = 0) =>
        new() { Device = new CudaDeviceOptions { Ordinal = ordinal }, MatMulPrecision = CudaMatMulPrecision.BFloat16 };
}

using System.Globalization;
using Microsoft.Extensions.Logging;
using SparseInference.Tensors;
using SparseInference.Tensors.Cuda;

namespace SparseInference.Serving.Hosting;

/// <summary>
/// Turns <see cref="SparseInferenceOptions.Device"/> into the compute backend models are loaded onto: null for
/// <c>cpu</c> (the engine's shared CPU backend), a CUDA backend for <c>cuda</c> / <c>cuda:N</c>. When CUDA cannot be
/// used the server still serves: one warning names the reason and models run on the CPU.
/// </summary>
internal static partial class ComputeDeviceSelector
{
    public const string Cpu = "cpu";
    public const string Cuda = "cuda";

    /// <summary>The backend for <paramref name="device"/>, or null for the CPU (asked for, or the fallback).</summary>
    public static IComputeBackend? Create(string device, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        var name = (device ?? Cpu).Trim().ToLowerInvariant();
        if (name == Cpu)
        {
            Log.UsingCpu(logger);
            return null;
        }

        var ordinal = 0;
        if (name != Cuda && !(name.StartsWith(Cuda + ":", StringComparison.Ordinal)
            && int.TryParse(name.AsSpan(Cuda.Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ordinal)))
        {
            throw new ArgumentException($"{SparseInferenceOptions.SectionName}:Device must be 'cpu', 'cuda' or 'cuda:N', got '{device}'.", nameof(device));
        }

        string? reason;
        CudaComputeBackend? backend;
        try
        {
            // Serving runs as a BF16 model does: products on the BF16 tensor cores with FP32 accumulation, and outputs
            // that feed only the next product (and LayerNorm's) kept in BF16 until something reads them as FP32
            // (3.6e-3 relative error against the FP32 CPU engine, 1.2x faster than BF16 operands with FP32 outputs;
            // docs/benchmarks.md, GPU whole-model forward).
            var options = new CudaBackendOptions { Device = new CudaDeviceOptions { Ordinal = ordinal }, MatMulPrecision = CudaMatMulPrecision.BFloat16 };
            if (!CudaComputeBackend.TryCreate(out backend, out reason, options) || backend is null)
            {
                Log.CudaUnavailable(logger, device!, (reason ?? "unknown reason").TrimEnd('.'));
                return null;
            }
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or CudaException)
        {
            Log.CudaUnavailable(logger, device!, ex.Message.TrimEnd('.'));
            return null;
        }

        Log.UsingCuda(logger, backend.Name, backend.Gpu.Describe());
        return backend;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "Compute device: cpu (CPU backend, AVX-512 where available)")]
        public static partial void UsingCpu(ILogger logger);

        [LoggerMessage(EventId = 41, Level = LogLevel.Information, Message = "Compute device: {Backend} ({Description}); models load onto the GPU, BF16 matrix products with FP32 accumulation, BF16 activations between products")]
        public static partial void UsingCuda(ILogger logger, string backend, string description);

        [LoggerMessage(EventId = 42, Level = LogLevel.Warning, Message = "SparseInference:Device is '{Device}' but CUDA is unavailable: {Reason}. Falling back to the CPU.")]
        public static partial void CudaUnavailable(ILogger logger, string device, string reason);
    }
}

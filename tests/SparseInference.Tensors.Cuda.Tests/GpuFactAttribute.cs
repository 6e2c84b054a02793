using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SparseInference.Tensors.Cuda.Tests;

/// <summary>
/// A test that needs a CUDA GPU: skipped, with the backend's own reason (what is missing and what
/// to install), where <see cref="CudaDevice.TryCreate"/> fails, as on CI.
/// </summary>
public sealed class GpuFactAttribute : FactAttribute
{
    public GpuFactAttribute([CallerFilePath] string? sourceFilePath = null, [CallerLineNumber] int sourceLineNumber = -1)
        : base(sourceFilePath, sourceLineNumber)
    {
        if (!GpuAvailability.Available)
        {
            Skip = "No usable CUDA GPU: " + GpuAvailability.Reason;
        }
    }
}

/// <summary>A theory that needs a CUDA GPU: skipped like <see cref="GpuFactAttribute"/>.</summary>
public sealed class GpuTheoryAttribute : TheoryAttribute
{
    public GpuTheoryAttribute([CallerFilePath] string? sourceFilePath = null, [CallerLineNumber] int sourceLineNumber = -1)
        : base(sourceFilePath, sourceLineNumber)
    {
        if (!GpuAvailability.Available)
        {
            Skip = "No usable CUDA GPU: " + GpuAvailability.Reason;
        }
    }
}

/// <summary>The outcome of one <see cref="CudaDevice.TryCreate"/> per test run.</summary>
internal static class GpuAvailability
{
    private static readonly Lazy<(bool Available, string? Reason)> Probe = new(() =>
    {
        if (CudaDevice.TryCreate(out var backend, out var reason))
        {
            backend!.Dispose();
            return (true, null);
        }

        return (false, reason);
    });

    public static bool Available => Probe.Value.Available;

    public static string? Reason => Probe.Value.Reason;
}

/// <summary>A test of the no-GPU path: skipped where the NVIDIA driver library loads.</summary>
public sealed class NoDriverFactAttribute : FactAttribute
{
    public NoDriverFactAttribute([CallerFilePath] string? sourceFilePath = null, [CallerLineNumber] int sourceLineNumber = -1)
        : base(sourceFilePath, sourceLineNumber)
    {
        if (NativeLibrary.TryLoad("libcuda.so.1", out var handle))
        {
            NativeLibrary.Free(handle);
            Skip = "libcuda.so.1 is present on this machine, so the backend is not unavailable for lack of a driver.";
        }
    }
}

using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using SparseInference.Tensors;

namespace SparseInference.Serving.Tests.TestDoubles;

/// <summary>An accelerator backend as the serving library sees one: the contract plus the optional capabilities.</summary>
public interface ITestAccelerator : IComputeBackend, IDeviceMemory, IDeviceFaultClassifier
{
}

/// <summary>
/// A backend that stands for an accelerator the test machine lacks: it answers the capability queries from settable
/// values and refuses every op (a model is never loaded onto it). Tests set what the device reports and which
/// exceptions are its faults.
/// </summary>
public class TestAccelerator : DispatchProxy
{
    public string BackendName { get; set; } = "cuda:0";

    public (long FreeBytes, long TotalBytes) MemoryReading { get; set; }

    public DeviceMemoryUse UseReading { get; set; }

    /// <summary>The exception type this device's errors have.</summary>
    public Type FaultType { get; set; } = typeof(TimeoutException);

    /// <summary>Thrown by the memory reads when set (a device that stopped answering, or a bug).</summary>
    public Exception? ReadFailure { get; set; }

    public int CacheReleases { get; private set; }

    public bool Disposed { get; private set; }

    /// <summary>A new accelerator and its control object.</summary>
    public static (ITestAccelerator Backend, TestAccelerator Control) Create()
    {
        var backend = Create<ITestAccelerator, TestAccelerator>();
        return (backend, (TestAccelerator)(object)backend);
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        if (Disposed && targetMethod?.Name is nameof(IDeviceMemory.DeviceMemory) or nameof(IDeviceMemory.MemoryUse))
        {
            throw new ObjectDisposedException(BackendName);
        }

        if (ReadFailure is not null && targetMethod?.Name is nameof(IDeviceMemory.DeviceMemory) or nameof(IDeviceMemory.MemoryUse))
        {
            throw ReadFailure;
        }

        return targetMethod?.Name switch
        {
            "get_" + nameof(IComputeBackend.Name) => BackendName,
            "get_" + nameof(IComputeBackend.Device) => DeviceKind.Cuda,
            nameof(IDeviceMemory.DeviceMemory) => MemoryReading,
            nameof(IDeviceMemory.MemoryUse) => UseReading,
            nameof(IDeviceMemory.ReleaseCachedMemory) => Release(),
            nameof(IDeviceFaultClassifier.IsDeviceFault) => FaultType.IsInstanceOfType(args![0]),
            nameof(IDisposable.Dispose) => Dispose(),
            _ => throw new NotSupportedException($"{targetMethod?.Name} is not supported by the test accelerator"),
        };
    }

    private object? Release()
    {
        CacheReleases++;
        return null;
    }

    private object? Dispose()
    {
        Disposed = true;
        return null;
    }
}

/// <summary>Opens <see cref="Backend"/> for CUDA devices, or fails with <see cref="FailureReason"/>; counts the calls.</summary>
public sealed class TestAcceleratorProvider(IComputeBackend? backend, string? failureReason = null) : IComputeBackendProvider
{
    public List<ComputeDevice> Opened { get; } = [];

    public DeviceKind Kind => DeviceKind.Cuda;

    public IComputeBackend? Backend => backend;

    public string? FailureReason => failureReason;

    public bool TryOpen(ComputeDevice device, [NotNullWhen(true)] out IComputeBackend? opened, out string description)
    {
        Opened.Add(device);
        opened = failureReason is null ? backend : null;
        description = failureReason ?? "test accelerator";
        return opened is not null;
    }
}

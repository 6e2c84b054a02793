namespace SparseInference.Serving.Health;

/// <summary>
/// The compute device failed in a way that is not about the request (a lost device, a sticky driver error, an
/// unrecoverable allocator state). An engine or backend throws it, or wraps its own exception in it, so that
/// <see cref="EngineFaultMonitor"/> counts the failure toward liveness. CUDA backend errors count without wrapping.
/// </summary>
public sealed class DeviceFaultException : Exception
{
    public DeviceFaultException(string message)
        : base(message)
    {
    }

    public DeviceFaultException(string message, Exception? inner)
        : base(message, inner)
    {
    }
}

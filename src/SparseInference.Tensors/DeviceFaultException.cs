namespace SparseInference.Tensors;

/// <summary>
/// The compute device failed in a way that is not about the request (a lost device, a sticky driver error, an
/// unrecoverable allocator state). An engine or backend throws it, or wraps its own exception in it, so that a server
/// counts the failure toward liveness. A backend's own exceptions count without wrapping where it implements
/// <see cref="IDeviceFaultClassifier"/>.
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

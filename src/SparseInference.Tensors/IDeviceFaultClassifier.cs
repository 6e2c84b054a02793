namespace SparseInference.Tensors;

/// <summary>
/// Optional capability of a backend: tells a failure of the device (a lost GPU, a sticky driver error) from a failure of
/// the request. A server counts device faults toward liveness, so an orchestrator restarts a process whose device no
/// longer works.
/// </summary>
public interface IDeviceFaultClassifier
{
    /// <summary>True when <paramref name="exception"/> itself (not its inner exceptions) is an error of this backend's device.</summary>
    bool IsDeviceFault(Exception exception);
}

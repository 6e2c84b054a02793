using System.Diagnostics.CodeAnalysis;

namespace SparseInference.Tensors;

/// <summary>
/// Opens the backend of one kind of device (an accelerator assembly registers one; the CPU backend needs none). A host
/// picks the provider whose <see cref="Kind"/> matches the configured <see cref="ComputeDevice"/>, so only the chosen
/// kind's native libraries are ever loaded.
/// </summary>
public interface IComputeBackendProvider
{
    /// <summary>The device kind this provider opens.</summary>
    DeviceKind Kind { get; }

    /// <summary>
    /// Opens <paramref name="device"/>. True with the backend and a one-line <paramref name="description"/> of the device
    /// (for the start-up log); false, without throwing, where the device cannot be used (no driver, no such GPU, a missing
    /// native library), with the reason and what to install in <paramref name="description"/>.
    /// </summary>
    bool TryOpen(ComputeDevice device, [NotNullWhen(true)] out IComputeBackend? backend, out string description);
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Tensors;

namespace SparseInference.Serving.Hosting;

/// <summary>
/// The compute backend of <see cref="SparseInferenceOptions.Device"/>, opened on first use (the first model load): null for
/// <c>cpu</c> (the engine's shared CPU backend), else what the registered <see cref="IComputeBackendProvider"/> of the
/// device's kind opens. When it cannot be opened, or no provider of that kind is registered, the server still serves: one
/// warning names the reason and models run on the CPU. Its optional capabilities (<see cref="IDeviceMemory"/>,
/// <see cref="IDeviceFaultClassifier"/>) are what the memory metrics and the fault monitor read.
/// </summary>
public sealed partial class ConfiguredBackend : IDisposable
{
    private readonly Lazy<IComputeBackend?> _backend;

    public ConfiguredBackend(IOptions<SparseInferenceOptions> options, IEnumerable<IComputeBackendProvider> providers, ILogger<ConfiguredBackend> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(providers);
        ArgumentNullException.ThrowIfNull(logger);
        var configured = options.Value.Device;
        Device = ComputeDevice.Parse(configured);
        var candidates = providers.ToList();
        _backend = new Lazy<IComputeBackend?>(() => Open(configured, Device, candidates, logger), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The configured device, parsed once.</summary>
    public ComputeDevice Device { get; }

    /// <summary>The backend models load onto, opened now if it was not yet; null for the engine's shared CPU backend.</summary>
    public IComputeBackend? Backend => _backend.Value;

    /// <summary>The backend if the first load has opened it already (never opens it): what metrics and health read.</summary>
    public IComputeBackend? Opened => _backend.IsValueCreated ? _backend.Value : null;

    public void Dispose()
    {
        if (_backend.IsValueCreated)
        {
            _backend.Value?.Dispose();
        }
    }

    private static IComputeBackend? Open(string configured, ComputeDevice device, IReadOnlyList<IComputeBackendProvider> providers, ILogger logger)
    {
        if (device.Kind == DeviceKind.Cpu)
        {
            Log.UsingCpu(logger);
            return null;
        }

        var kind = device.Kind.ToString().ToUpperInvariant();
        if (providers.FirstOrDefault(p => p.Kind == device.Kind) is not { } provider)
        {
            Log.Unavailable(logger, configured, kind, $"no {kind} backend is registered in this host (its assembly's Add{device.Kind}Backend() was not called)");
            return null;
        }

        if (!provider.TryOpen(device, out var backend, out var description))
        {
            Log.Unavailable(logger, configured, kind, description.TrimEnd('.'));
            return null;
        }

        Log.UsingDevice(logger, backend.Name, description);
        return backend;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.ComputeDeviceCpu, Level = LogLevel.Information, Message = "Compute device: cpu (CPU backend, AVX-512 where available)")]
        public static partial void UsingCpu(ILogger logger);

        [LoggerMessage(EventId = EventIds.ComputeDeviceOpened, Level = LogLevel.Information, Message = "Compute device: {Backend} ({Description})")]
        public static partial void UsingDevice(ILogger logger, string backend, string description);

        [LoggerMessage(EventId = EventIds.ComputeDeviceUnavailable, Level = LogLevel.Warning, Message = "SparseInference:Device is '{Device}' but {Kind} is unavailable: {Reason}. Falling back to the CPU.")]
        public static partial void Unavailable(ILogger logger, string device, string kind, string reason);
    }
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Hosting;
using SparseInference.Tensors;

namespace SparseInference.Serving.Health;

/// <summary>
/// Watches engine forwards for a persistent device fault: after <see cref="HealthOptions.DeviceFaultThreshold"/>
/// forwards in a row fail with a device error (<see cref="DeviceFaultException"/>, or an exception the configured backend
/// classifies as its device's through <see cref="IDeviceFaultClassifier"/>, also as an inner exception) and none succeeds in between, the server is declared faulted and liveness fails
/// (<see cref="ServerState.MarkFaulted"/>), so the orchestrator restarts it. A success resets the count, so a transient
/// failure (one bad batch, an allocation that fails once) never does; errors that are not device errors (a bug for one
/// input, a cancelled request) neither count nor reset.
/// </summary>
public sealed partial class EngineFaultMonitor(
    ServerState state, IOptions<SparseInferenceOptions> options, ILogger<EngineFaultMonitor> logger, ConfiguredBackend? backend = null)
{
    private readonly int _threshold = options.Value.Health.DeviceFaultThreshold;
    private int _consecutive;

    /// <summary>Device-error forwards since the last success.</summary>
    public int ConsecutiveDeviceFaults => Volatile.Read(ref _consecutive);

    /// <summary>A forward finished: the device works.</summary>
    public void ReportSuccess()
    {
        // Read first: the common case (no recent fault) leaves the shared line untouched.
        if (Volatile.Read(ref _consecutive) != 0)
        {
            Interlocked.Exchange(ref _consecutive, 0);
        }
    }

    /// <summary>A forward threw <paramref name="exception"/>; device errors count toward the threshold.</summary>
    public void ReportFailure(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (!IsDeviceFault(exception))
        {
            return;
        }

        var count = Interlocked.Increment(ref _consecutive);
        Log.DeviceFault(logger, count, _threshold, exception.GetType().Name, exception.Message);
        if (_threshold > 0 && count >= _threshold && state.IsLive)
        {
            var reason = $"{count} consecutive engine forwards failed with a device error (threshold {_threshold}); last: {exception.GetType().Name}: {exception.Message}";
            state.MarkFaulted(reason);
            Log.Faulted(logger, reason);
        }
    }

    /// <summary>True for a device error, found anywhere in the exception's inner chain.</summary>
    public bool IsDeviceFault(Exception exception)
    {
        // Only an opened backend can have thrown its own errors.
        var classifier = backend?.Opened as IDeviceFaultClassifier;
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is DeviceFaultException || classifier?.IsDeviceFault(e) == true)
            {
                return true;
            }

            if (e is AggregateException aggregate && aggregate.InnerExceptions.Any(IsDeviceFault))
            {
                return true;
            }
        }

        return false;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.DeviceFault, Level = LogLevel.Warning, Message = "Engine forward failed with a device error ({Count} in a row, liveness fails at {Threshold}): {ExceptionType}: {ExceptionMessage}")]
        public static partial void DeviceFault(ILogger logger, int count, int threshold, string exceptionType, string exceptionMessage);

        [LoggerMessage(EventId = EventIds.PersistentDeviceFault, Level = LogLevel.Critical, Message = "Persistent device fault, liveness now fails so the process gets restarted: {Reason}")]
        public static partial void Faulted(ILogger logger, string reason);
    }
}

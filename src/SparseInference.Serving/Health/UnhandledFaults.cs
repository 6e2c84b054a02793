using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace SparseInference.Serving.Health;

/// <summary>
/// What a caller and the log get when a request fails inside the server (an engine exception in its batch, a bug):
/// the caller a 500 / INTERNAL whose message carries the trace id and the exception's type only (no internals), the
/// log an error line with the same trace id and the whole exception, so the two can be matched.
/// </summary>
public static partial class UnhandledFaults
{
    /// <summary>The id of the fault line (<see cref="EventIds.UnhandledFault"/>), which callers match by.</summary>
    public const int EventId = EventIds.UnhandledFault;

    /// <summary>The W3C trace id of the current request (from its <c>traceparent</c> when sent), or a new one when none is recorded.</summary>
    public static string CurrentTraceId()
    {
        var activity = Activity.Current;
        return activity is not null && activity.IdFormat == ActivityIdFormat.W3C
            ? activity.TraceId.ToHexString()
            : ActivityTraceId.CreateRandom().ToHexString();
    }

    /// <summary>Logs the fault and returns the message for the caller.</summary>
    public static string Report(ILogger logger, string protocol, string target, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(exception);
        var traceId = CurrentTraceId();
        Failed(logger, protocol, target, traceId, exception);
        return $"internal error while handling {target} ({exception.GetType().Name}); trace id {traceId}";
    }

    [LoggerMessage(EventId = EventId, Level = LogLevel.Error, Message = "{Protocol} request {Target} failed inside the server (trace {TraceId})")]
    private static partial void Failed(ILogger logger, string protocol, string target, string traceId, Exception exception);
}

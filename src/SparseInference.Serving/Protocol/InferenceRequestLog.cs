using System.Diagnostics;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Protocol;

/// <summary>The request log: one structured line per inference with what an operator filters and aggregates on.</summary>
public sealed partial class InferenceRequestLog(ILogger<InferenceRequestLog> logger)
{
    public const int CompletedEventId = 1100;

    /// <summary>Logs one finished inference; the trace id is the current activity's, empty when none is recorded.</summary>
    public void Completed(VariantLabels labels, string protocol, int batchSize, TimeSpan queue, TimeSpan compute, string status)
    {
        if (!logger.IsEnabled(LogLevel.Information))
            return;

        var traceId = Activity.Current?.TraceId.ToHexString() ?? string.Empty;
        InferenceCompleted(logger, labels.Model, labels.Version, labels.Variant, batchSize,
            (long)queue.TotalMicroseconds, (long)compute.TotalMicroseconds, protocol, status, traceId);
    }

    [LoggerMessage(EventId = CompletedEventId, Level = LogLevel.Information,
        Message = "Inference {Model} v{Version} variant {Variant} batch {BatchSize}: queue {QueueMicroseconds} µs, compute {ComputeMicroseconds} µs over {Protocol}, {Status} (trace {TraceId})")]
    private static partial void InferenceCompleted(ILogger logger, string model, string version, string variant, int batchSize,
        long queueMicroseconds, long computeMicroseconds, string protocol, string status, string traceId);
}

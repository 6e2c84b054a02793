using Microsoft.Extensions.Logging;

namespace SparseInference.Serving.Batching;

internal static partial class BatchingLog
{
    [LoggerMessage(EventId = EventIds.BatchFailedRetryingSingly, Level = LogLevel.Warning, Message = "Batch of {BatchSize} for variant '{Variant}' failed; retrying its members one by one.")]
    public static partial void BatchFailedRetryingSingly(ILogger logger, string variant, int batchSize, Exception exception);

    [LoggerMessage(EventId = EventIds.RequestFailedAlone, Level = LogLevel.Warning, Message = "Request for variant '{Variant}' failed when executed alone.")]
    public static partial void RequestFailed(ILogger logger, string variant, Exception exception);

    [LoggerMessage(EventId = EventIds.SchedulerFault, Level = LogLevel.Error, Message = "Batch scheduler for variant '{Variant}' hit an unexpected fault; continuing.")]
    public static partial void SchedulerFault(ILogger logger, string variant, Exception exception);
}

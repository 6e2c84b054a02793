using Microsoft.Extensions.Logging;

namespace SparseInference.Serving.Batching;

internal static partial class BatchingLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Batch of {BatchSize} for variant '{Variant}' failed; retrying its members one by one.")]
    public static partial void BatchFailedRetryingSingly(ILogger logger, string variant, int batchSize, Exception exception);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Request for variant '{Variant}' failed when executed alone.")]
    public static partial void RequestFailed(ILogger logger, string variant, Exception exception);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Batch scheduler for variant '{Variant}' hit an unexpected fault; continuing.")]
    public static partial void SchedulerFault(ILogger logger, string variant, Exception exception);
}

using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Protocol;

/// <summary>
/// The request log's inference fields: what one finished inference adds to the single log line of the request that carried
/// it (model, version, variant, batch size, queue and compute time, protocol, outcome). The host's request logging
/// writes the line; without a registered implementation nothing is recorded.
/// </summary>
public abstract class InferenceRequestLog
{
    /// <summary>Records one finished inference; <paramref name="status"/> is one of the <see cref="RequestOutcomes"/>.</summary>
    public abstract void Completed(VariantLabels labels, string protocol, int batchSize, TimeSpan queue, TimeSpan compute, string status);
}

using System.Diagnostics;
using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Protocol;

/// <summary>
/// Spans of one inference on the <see cref="SourceName"/> source: <c>receive</c> (the whole request, child of the
/// transport's activity, so a <c>traceparent</c> header sets the trace id) with children <c>queue</c> (waiting for a
/// batch), <c>batch</c> (the batch's execution, with <c>compute</c>, the engine forward, inside) and <c>respond</c>
/// (shaping outputs). Queue and batch spans are placed from the executor's measured queue and compute times.
/// </summary>
public static class InferenceTracing
{
    public const string SourceName = "SparseInference";
    public const string ModelTag = "sparseinference.model";
    public const string VersionTag = "sparseinference.version";
    public const string VariantTag = "sparseinference.variant";
    public const string BatchSizeTag = "sparseinference.batch_size";
    public const string ProtocolTag = "sparseinference.protocol";
    public const string OutcomeTag = "sparseinference.outcome";

    public static readonly ActivitySource Source = new(SourceName);

    public static Activity? StartReceive(string model, string protocol)
    {
        var activity = Source.StartActivity("receive", ActivityKind.Server);
        activity?.SetTag(ModelTag, model);
        activity?.SetTag(ProtocolTag, protocol);
        return activity;
    }

    /// <summary>Adds the queue, batch and compute spans of an execution that began at <paramref name="executeStarted"/>.</summary>
    public static void RecordExecution(Activity? receive, DateTimeOffset executeStarted, DateTimeOffset executeFinished,
        TimeSpan queue, TimeSpan compute, VariantLabels labels, int batchSize)
    {
        if (receive is null)
            return;

        receive.SetTag(VersionTag, labels.Version);
        receive.SetTag(VariantTag, labels.Variant);
        receive.SetTag(BatchSizeTag, batchSize);
        var queueEnd = executeStarted + queue;
        Span("queue", receive.Context, executeStarted, queueEnd, labels, batchSize, parentIsCurrent: false);
        var batch = Span("batch", receive.Context, queueEnd, executeFinished, labels, batchSize, parentIsCurrent: false, keepOpen: true);
        if (batch is not null)
        {
            var computeStart = executeFinished - compute < queueEnd ? queueEnd : executeFinished - compute;
            Span("compute", batch.Context, computeStart, executeFinished, labels, batchSize, parentIsCurrent: false);
            batch.SetEndTime(executeFinished.UtcDateTime);
            batch.Dispose();
        }
    }

    /// <summary>The span of shaping the response, from <paramref name="started"/> to <paramref name="finished"/>.</summary>
    public static void RecordRespond(Activity? receive, DateTimeOffset started, DateTimeOffset finished, VariantLabels labels, int batchSize)
    {
        if (receive is not null)
            Span("respond", receive.Context, started, finished, labels, batchSize, parentIsCurrent: false);
    }

    public static void Complete(Activity? receive, string outcome)
    {
        if (receive is null)
            return;

        receive.SetTag(OutcomeTag, outcome);
        receive.SetStatus(outcome == RequestOutcomes.Success ? ActivityStatusCode.Ok : ActivityStatusCode.Error);
    }

    private static Activity? Span(string name, ActivityContext parent, DateTimeOffset start, DateTimeOffset end, VariantLabels labels, int batchSize,
        bool parentIsCurrent, bool keepOpen = false)
    {
        _ = parentIsCurrent;
        var current = Activity.Current;
        var span = Source.StartActivity(name, ActivityKind.Internal, parent, startTime: start);
        // Restore the caller's current activity: these spans describe work already done, not work in progress.
        Activity.Current = current;
        if (span is null)
            return null;

        span.SetTag(ModelTag, labels.Model);
        span.SetTag(VersionTag, labels.Version);
        span.SetTag(VariantTag, labels.Variant);
        span.SetTag(BatchSizeTag, batchSize);
        if (!keepOpen)
        {
            span.SetEndTime(end.UtcDateTime);
            span.Dispose();
            Activity.Current = current;
        }

        return span;
    }
}

using System.Globalization;
using Serilog;
using SparseInference.Serving.Metrics;
using SparseInference.Serving.Protocol;

namespace SparseInference.Server.Observability.Logging;

/// <summary>
/// Puts an inference's fields on its request's log line through Serilog's diagnostic context; the request logging middleware
/// (<see cref="RequestLoggingApplicationBuilderExtensions"/>) writes that line once the request ends.
/// </summary>
internal sealed class DiagnosticContextRequestLog(IDiagnosticContext context) : InferenceRequestLog
{
    public override void Completed(VariantLabels labels, string protocol, int batchSize, TimeSpan queue, TimeSpan compute, string status)
    {
        context.Set(RequestLogFields.Model, labels.Model);
        context.Set(RequestLogFields.Version, labels.Version);
        context.Set(RequestLogFields.Variant, labels.Variant);
        context.Set(RequestLogFields.Protocol, protocol);
        context.Set(RequestLogFields.Status, status);
        context.Set(RequestLogFields.BatchSize, batchSize);
        context.Set(RequestLogFields.QueueMicroseconds, (long)queue.TotalMicroseconds);
        context.Set(RequestLogFields.ComputeMicroseconds, (long)compute.TotalMicroseconds);
        context.Set(RequestLogFields.Inference, string.Create(CultureInfo.InvariantCulture,
            $": {labels.Model} v{labels.Version} variant {labels.Variant} batch {batchSize}, {status}"));
    }
}

/// <summary>Property names of the request log line.</summary>
public static class RequestLogFields
{
    public const string Model = "Model";
    public const string Version = "Version";
    public const string Variant = "Variant";
    public const string Protocol = "Protocol";
    public const string Status = "Status";
    public const string BatchSize = "BatchSize";
    public const string QueueMicroseconds = "QueueMicroseconds";
    public const string ComputeMicroseconds = "ComputeMicroseconds";
    public const string TraceId = "TraceId";
    public const string Listener = "Listener";
    public const string GrpcStatus = "GrpcStatus";

    /// <summary>The inference's summary in the rendered message; empty on requests that ran no inference.</summary>
    public const string Inference = "Inference";
}

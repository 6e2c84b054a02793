using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Observability.Tracing;

/// <summary>
/// Trace export; bound from "SparseInference:Tracing", a node of the <see cref="SparseInferenceOptions"/> tree. Read once
/// while the host is built (it decides whether OpenTelemetry is registered at all) and checked there.
/// </summary>
public sealed class TracingOptions
{
    public const string SectionName = SparseInferenceOptions.SectionName + ":Tracing";

    /// <summary>
    /// The OTLP collector: gRPC, or HTTP protobuf when the path ends in <c>/v1/traces</c>. Empty (the default): the standard
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> if set, else no tracing.
    /// </summary>
    public string OtlpEndpoint { get; set; } = "";
}

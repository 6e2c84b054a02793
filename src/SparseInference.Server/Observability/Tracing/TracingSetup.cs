using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using SparseInference.Serving.Protocol;

namespace SparseInference.Server.Observability.Tracing;

/// <summary>
/// Traces through OpenTelemetry when an OTLP endpoint is configured: <c>SparseInference:Tracing:OtlpEndpoint</c> (gRPC, or
/// HTTP protobuf when its path ends in <c>/v1/traces</c>) or the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (with
/// <c>OTEL_EXPORTER_OTLP_PROTOCOL</c>). The spans: ASP.NET Core's request span (with gRPC's <c>rpc.*</c> attributes on the
/// gRPC port) and the inference spans of <see cref="InferenceTracing"/> under it. Without an endpoint nothing is registered
/// and no span is recorded.
/// </summary>
public static class TracingSetup
{
    public const string EndpointKey = TracingOptions.SectionName + ":" + nameof(TracingOptions.OtlpEndpoint);
    public const string StandardEndpointKey = "OTEL_EXPORTER_OTLP_ENDPOINT";
    public const string ServiceName = "sparseinference";

    /// <summary>OpenTelemetry's switch for the <c>rpc.*</c> attributes of gRPC calls on ASP.NET Core's request spans.</summary>
    public const string GrpcAttributesKey = "OTEL_DOTNET_EXPERIMENTAL_ASPNETCORE_ENABLE_GRPC_INSTRUMENTATION";

    public static WebApplicationBuilder AddSparseInferenceTracing(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var configuration = builder.Configuration;
        var endpoint = (configuration.GetSection(TracingOptions.SectionName).Get<TracingOptions>() ?? new TracingOptions()).OtlpEndpoint;
        Uri? uri = null;
        if (!string.IsNullOrWhiteSpace(endpoint))
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out uri) || uri.Scheme is not ("http" or "https"))
                throw new InvalidOperationException($"{EndpointKey}: expected an absolute http(s) URI such as http://collector:4317, actual '{endpoint}'");
        }
        else if (string.IsNullOrWhiteSpace(configuration[StandardEndpointKey]))
        {
            return builder;
        }

        configuration[GrpcAttributesKey] ??= "true";
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(ServiceName))
            .WithTracing(tracing => tracing
                .AddSource(InferenceTracing.SourceName)
                .AddAspNetCoreInstrumentation(options => options.Filter = context => !IsProbeOrScrape(context.Request.Path))
                .AddOtlpExporter(options =>
                {
                    // Without our key the exporter reads the OTEL_EXPORTER_OTLP_* settings itself.
                    if (uri is null)
                        return;
                    options.Endpoint = uri;
                    options.Protocol = uri.AbsolutePath.EndsWith("/v1/traces", StringComparison.Ordinal) ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                }));
        return builder;
    }

    private static bool IsProbeOrScrape(Microsoft.AspNetCore.Http.PathString path) =>
        path.StartsWithSegments("/metrics", StringComparison.Ordinal)
        || path.StartsWithSegments("/v2/health", StringComparison.Ordinal)
        || path.StartsWithSegments("/grpc.health.v1.Health", StringComparison.Ordinal);
}

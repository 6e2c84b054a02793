using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using SparseInference.Serving.Protocol;

namespace SparseInference.Serving.Hosting;

/// <summary>
/// Exports the <see cref="InferenceTracing.SourceName"/> spans over OTLP when <c>SparseInference:Tracing:OtlpEndpoint</c>
/// is set; without it nothing listens and the spans cost nothing. The provider lives in the container and is disposed
/// (flushing pending spans) when the host shuts down.
/// </summary>
public static class TracingSetup
{
    public const string EndpointKey = "SparseInference:Tracing:OtlpEndpoint";
    public const string ServiceName = "sparseinference";

    public static IServiceCollection AddSparseInferenceTracing(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var endpoint = configuration[EndpointKey];
        if (string.IsNullOrWhiteSpace(endpoint))
            return services;

        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri))
            throw new InvalidOperationException($"{EndpointKey}: expected an absolute URI such as http://collector:4317, actual '{endpoint}'");

        services.AddSingleton(_ => Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(ResourceBuilder.CreateDefault().AddService(ServiceName))
            .AddSource(InferenceTracing.SourceName)
            .AddOtlpExporter(options =>
            {
                options.Endpoint = uri;
                options.Protocol = uri.AbsolutePath.EndsWith("/v1/traces", StringComparison.Ordinal) ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
            })
            .Build());
        services.AddHostedService<TracerProviderLifetime>();
        return services;
    }

    /// <summary>Creates the provider when the host starts, so spans are exported from the first request on.</summary>
    private sealed class TracerProviderLifetime(TracerProvider provider) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            _ = provider;
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            provider.ForceFlush(timeoutMilliseconds: 5000);
            return Task.CompletedTask;
        }
    }
}

using Microsoft.AspNetCore.Builder;
using SparseInference.Server.Admin;
using SparseInference.Server.Grpc;
using SparseInference.Server.Observability.Logging;
using SparseInference.Server.Observability.Metrics;
using SparseInference.Server.Observability.Tracing;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Hosting;

public static class SparseInferenceHostExtensions
{
    /// <summary>
    /// The whole service from the <c>SparseInference</c> configuration section: the serving stack and its REST and admin
    /// APIs, gRPC, Serilog logging, the Prometheus exporter and, when an OTLP endpoint is configured, tracing.
    /// </summary>
    public static WebApplicationBuilder AddSparseInferenceHost(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddSparseInferenceLogging();
        builder.AddSparseInferenceTracing();
        builder.Services.AddSparseInference(builder.Configuration);
        builder.Services.AddSparseInferenceGrpc();
        builder.Services.AddPrometheusExport();
        return builder;
    }

    /// <summary>
    /// The request log and the gRPC message guard, then REST and admin (line baselines included), gRPC and the metrics
    /// exporter, each on its own port.
    /// </summary>
    public static WebApplication MapSparseInferenceHost(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseSparseInferenceRequestLogging();
        app.UseGrpcFrameGuard();
        app.MapSparseInference();
        app.MapSparseInferenceGrpc();
        var ports = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<SparseInferenceOptions>>().Value.Ports;
        app.MapSparseInferenceBaselines().RequireLocalPort(ports.Admin);
        app.MapPrometheusMetrics().RequireLocalPort(ports.Metrics);
        return app;
    }
}

using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;
using SparseInference.Server.Admin;
using SparseInference.Server.Grpc;
using SparseInference.Server.Observability.Logging;
using SparseInference.Server.Observability.Metrics;
using SparseInference.Server.Observability.Tracing;
using SparseInference.Server.Rest;
using SparseInference.Serving.Hosting;
using SparseInference.Tensors.Cuda;

namespace SparseInference.Server.Hosting;

public static class SparseInferenceHostExtensions
{
    /// <summary>
    /// The whole service from the <c>SparseInference</c> configuration section: the serving library, the CUDA backend as
    /// a device it may open, Kestrel's listeners, API keys, the admin API, gRPC, Serilog logging, the Prometheus exporter
    /// and, when an OTLP endpoint is configured, tracing.
    /// </summary>
    public static WebApplicationBuilder AddSparseInferenceHost(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddSparseInferenceLogging();
        builder.AddSparseInferenceTracing();
        builder.Services.AddSparseInference(builder.Configuration);
        builder.Services.AddCudaBackend();
        builder.Services.AddSparseInferenceListeners();
        builder.Services.AddInferenceApiKeys(builder.Configuration);
        builder.Services.AddAdminApi();
        builder.Services.AddSparseInferenceGrpc();
        builder.Services.AddPrometheusExport();
        return builder;
    }

    /// <summary>
    /// The request log and the gRPC message guard, then each port's endpoints: REST on the REST port, gRPC on the gRPC
    /// port, the admin API on the admin port, the exporter on the metrics port.
    /// </summary>
    public static WebApplication MapSparseInferenceHost(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseSparseInferenceRequestLogging();
        app.UseGrpcFrameGuard();
        var ports = app.Services.GetRequiredService<IOptions<SparseInferenceOptions>>().Value.Ports;
        app.MapOpenInferenceRest().RequireLocalPort(ports.Rest);
        app.MapSparseInferenceGrpc();
        app.MapAdminApi(ports.Admin);
        app.MapPrometheusMetrics().RequireLocalPort(ports.Metrics);
        return app;
    }
}

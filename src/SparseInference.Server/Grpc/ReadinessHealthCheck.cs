using Microsoft.Extensions.Diagnostics.HealthChecks;
using SparseInference.Serving;
using SparseInference.Serving.Repository;

namespace SparseInference.Server.Grpc;

/// <summary>
/// What grpc.health.v1 reports: SERVING once the repository's start-up load is done, with at least one model version ready
/// and the engine live; NOT_SERVING while draining for shutdown, with no model ready, or after a persistent engine fault.
/// </summary>
internal sealed class ReadinessHealthCheck(ServerState state, ModelRepository repository) : IHealthCheck
{
    public const string Name = "ready";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!state.IsLive)
            return Task.FromResult(HealthCheckResult.Unhealthy($"engine fault: {state.FaultReason}"));
        if (!state.IsReady)
            return Task.FromResult(HealthCheckResult.Unhealthy("not ready: starting or draining for shutdown"));
        return Task.FromResult(repository.Index(readyOnly: true).Count > 0
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy("no model version is ready"));
    }
}

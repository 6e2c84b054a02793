using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Admission;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Hosting;

/// <summary>
/// Loads the repository before the listeners open, and on shutdown reports not-ready for the drain delay before
/// the listeners close, so a load balancer stops routing here while in-flight requests finish.
/// </summary>
internal sealed partial class ServerLifecycle(
    ModelRepository repository,
    IInferenceExecutor executor,
    ServerState state,
    IOptions<SparseInferenceOptions> options,
    TimeProvider time,
    ILogger<ServerLifecycle> logger,
    InFlightMemoryBudget? memoryBudget = null)
    : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        Log.LoadingRepository(logger, repository.Root);
        repository.LoadAll();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        state.MarkStarted();
        var ready = repository.Index(readyOnly: true).Count;
        Log.Ready(logger, ready, options.Value.Ports.Rest, options.Value.Ports.Grpc);
        if (memoryBudget is not null)
        {
            Log.MemoryBudget(logger, memoryBudget.CapacityBytes / 1048576.0, options.Value.Limits.InFlightMemoryBytes > 0 ? "configured" : "derived from the memory limit");
        }

        return Task.CompletedTask;
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        state.MarkDraining();
        var delay = TimeSpan.FromSeconds(options.Value.Shutdown.DrainDelaySeconds);
        if (delay > TimeSpan.Zero)
        {
            Log.Draining(logger, delay.TotalSeconds);
            try
            {
                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The shutdown timeout cut the drain short; stopping goes on.
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        // Queued requests run before the weights under them are released.
        if (executor is IAsyncDisposable batching)
        {
            await batching.DisposeAsync().ConfigureAwait(false);
        }

        repository.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.LoadingRepository, Level = LogLevel.Information, Message = "Loading model repository {Root}")]
        public static partial void LoadingRepository(ILogger logger, string root);

        [LoggerMessage(EventId = EventIds.Ready, Level = LogLevel.Information, Message = "Ready: {Versions} model versions loaded; REST on port {RestPort}, gRPC on port {GrpcPort}")]
        public static partial void Ready(ILogger logger, int versions, int restPort, int grpcPort);

        [LoggerMessage(EventId = EventIds.Draining, Level = LogLevel.Information, Message = "Draining: reporting not ready for {Seconds} s before closing listeners")]
        public static partial void Draining(ILogger logger, double seconds);

        [LoggerMessage(EventId = EventIds.MemoryBudget, Level = LogLevel.Information, Message = "Requests in flight may hold {Mebibytes:F0} MiB ({Source})")]
        public static partial void MemoryBudget(ILogger logger, double mebibytes, string source);
    }
}

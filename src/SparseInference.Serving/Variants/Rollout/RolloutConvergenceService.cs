using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace SparseInference.Serving.Variants.Rollout;

/// <summary>
/// Keeps this replica on the shared rollout state: after every change notification or poll interval of the store it
/// brings each model's registry to the stored revision (<see cref="VariantRegistry.SyncAsync"/>). A change written
/// through any replica therefore serves everywhere within one poll interval plus the time to build its variants.
/// </summary>
internal sealed partial class RolloutConvergenceService(VariantCatalog catalog, RolloutStore store, ILogger<RolloutConvergenceService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await store.WaitForChangeAsync(stoppingToken).ConfigureAwait(false);
                await SyncAllAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // Whatever went wrong with one round, the next one tries again; serving goes on meanwhile.
                Log.RoundFailed(logger, ex);
            }
        }
    }

    internal async Task SyncAllAsync(CancellationToken cancellationToken)
    {
        foreach (var model in catalog.Models)
        {
            if (catalog.TryGet(model, out var registry))
            {
                await registry.SyncAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.RolloutRoundFailed, Level = LogLevel.Error, Message = "Rollout convergence round failed; retrying at the next poll")]
        public static partial void RoundFailed(ILogger logger, Exception exception);
    }
}

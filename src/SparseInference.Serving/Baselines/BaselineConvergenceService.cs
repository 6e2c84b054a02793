using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Variants;

namespace SparseInference.Serving.Baselines;

/// <summary>
/// Keeps this replica's <see cref="LineBaselines"/> on the shared store: once at start, after the repository has loaded and
/// before the listeners open (a replica that starts or restarts scores every onboarded line from its first request), when
/// a model is loaded later, and after every change notification or poll interval of the store. A baseline onboarded
/// through any replica therefore applies everywhere within one poll interval.
/// </summary>
internal sealed partial class BaselineConvergenceService(
    LineBaselines baselines, VariantCatalog catalog, ModelRepository repository, ILogger<BaselineConvergenceService> logger) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        repository.Changed += OnModelChanged;
        await SyncRoundAsync(catalog.Models, cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        repository.Changed -= OnModelChanged;
        return base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await baselines.Store.WaitForChangeAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }

            await SyncRoundAsync(catalog.Models, stoppingToken).ConfigureAwait(false);
        }
    }

    private async Task SyncRoundAsync(IReadOnlyCollection<string> models, CancellationToken cancellationToken)
    {
        try
        {
            await baselines.SyncAsync(models, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            // Whatever went wrong with one round, the next one tries again; serving goes on with what was applied.
            Log.RoundFailed(logger, ex);
        }
    }

    /// <summary>A model loaded (or reloaded) at run time: its lines apply before the repository reports it loaded.</summary>
    private void OnModelChanged(ModelChange change)
    {
        if (change.DefaultVersion is null)
            return;
        SyncRoundAsync([.. catalog.Models.Append(change.Name).Distinct(StringComparer.Ordinal)], CancellationToken.None).GetAwaiter().GetResult();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.BaselineRoundFailed, Level = LogLevel.Error, Message = "Baseline convergence round failed; retrying at the next poll")]
        public static partial void RoundFailed(ILogger logger, Exception exception);
    }
}

using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Models;
using SparseInference.Serving.Variants.Guardrails;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Variants.Comparison;

/// <summary>
/// Runs shadow forwards off the request path. The caller only does a non-blocking write to a bounded
/// queue; when the queue is full the shadow is dropped and counted, so shadowing never delays or
/// starves the primary. Workers run the candidate, compare with the primary's answer and record it.
/// </summary>
public sealed partial class ShadowDispatcher : BackgroundService
{
    private readonly Channel<ShadowWork> _queue;
    private readonly int _workers;
    private readonly ComparisonStore _store;
    private readonly VariantMetrics _metrics;
    private readonly GuardrailMonitor _guardrails;
    private readonly TimeProvider _timeProvider;
    private readonly IServingPressure _pressure;
    private readonly ILogger<ShadowDispatcher> _logger;

    public ShadowDispatcher(
        IOptions<VariantOptions> options,
        ComparisonStore store,
        VariantMetrics metrics,
        GuardrailMonitor guardrails,
        TimeProvider timeProvider,
        IServingPressure pressure,
        ILogger<ShadowDispatcher> logger)
    {
        _queue = Channel.CreateBounded<ShadowWork>(new BoundedChannelOptions(options.Value.ShadowQueueCapacity)
        {
            // Wait mode makes TryWrite report a full queue (DropWrite would hide the drop from us).
            FullMode = BoundedChannelFullMode.Wait,
            SingleWriter = false,
            SingleReader = options.Value.ShadowWorkers == 1,
        });
        _workers = options.Value.ShadowWorkers;
        _store = store;
        _metrics = metrics;
        _guardrails = guardrails;
        _timeProvider = timeProvider;
        _pressure = pressure;
        _logger = logger;
    }

    /// <summary>
    /// Queues the shadow half of <paramref name="decision"/>. Never blocks. Returns false (and counts a drop)
    /// when the queue is full or live traffic is under pressure. <paramref name="input"/> must not be reused
    /// by the caller afterwards.
    /// </summary>
    public bool TryEnqueue(RouteDecision decision, ForwardInput input, ForwardResult primaryResult)
    {
        if (decision.Shadow is not { } candidate)
        {
            return false;
        }

        if (!_pressure.ShouldShedShadowWork && _queue.Writer.TryWrite(new ShadowWork(decision, candidate, input, primaryResult)))
        {
            return true;
        }

        RecordDrop(decision.Model, decision.Primary.Name, candidate.Name);
        return false;
    }

    private void RecordDrop(string model, string primary, string candidate)
    {
        _store.RecordDropped(model, primary, candidate);
        _metrics.RecordDropped(model, primary, candidate);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, _workers).Select(_ => Task.Run(() => WorkAsync(stoppingToken), CancellationToken.None)));

    private async Task WorkAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var work in _queue.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                Process(work);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: queued shadow work is abandoned, it never had a caller waiting.
        }
    }

    internal void Process(ShadowWork work)
    {
        var model = work.Decision.Model;
        var primary = work.Decision.Primary.Name;
        var candidate = work.Candidate.Name;
        if (_pressure.ShouldShedShadowWork)
        {
            // Queued before the pressure began: shed it now rather than compete with live requests.
            RecordDrop(model, primary, candidate);
            return;
        }

        var started = _timeProvider.GetTimestamp();
        try
        {
            var result = work.Candidate.Forward(work.Input);
            _guardrails.RecordRequest(model, candidate, _timeProvider.GetElapsedTime(started), failed: false);
            var sample = OutputComparer.Compare(work.PrimaryResult, result, work.Decision.FlagThreshold);
            _store.Record(model, primary, candidate, sample);
            _metrics.RecordComparison(model, primary, candidate, sample);
            _guardrails.RecordComparison(model, candidate, sample);
        }
        catch (Exception ex)
        {
            _guardrails.RecordRequest(model, candidate, _timeProvider.GetElapsedTime(started), failed: true);
            _store.RecordCandidateFailure(model, primary, candidate);
            Log.ShadowFailed(_logger, model, candidate, ex);
        }
    }

    internal sealed record ShadowWork(RouteDecision Decision, Variant Candidate, ForwardInput Input, ForwardResult PrimaryResult);

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.ShadowForwardFailed, Level = LogLevel.Warning, Message = "Model {Model}: shadow forward on {Candidate} failed")]
        public static partial void ShadowFailed(ILogger logger, string model, string candidate, Exception exception);
    }
}

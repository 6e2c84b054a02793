using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using SparseInference.Models;
using SparseInference.Serving.Metrics;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Batching;

/// <summary>
/// Runs requests through one <see cref="DynamicBatcher{TRequest,TResponse}"/> per (model version, variant name), with
/// options from the model's <c>serving.json</c> <c>batching</c> block. Queued windows are concatenated into one padded
/// <see cref="ForwardInput"/> (<c>Lengths</c> carry each sequence's own length), run as one forward and split back.
/// A batch never mixes variants: requests routed to different builds of one variant (a hot swap in between) run as
/// separate forwards inside the batch.
/// </summary>
public sealed partial class BatchingInferenceExecutor(TimeProvider time, ILogger<BatchingInferenceExecutor> logger, ServingMetrics? metrics = null)
    : IInferenceExecutor, IAsyncDisposable
{
    private readonly ConcurrentDictionary<(ModelVersion Model, string Variant), DynamicBatcher<BatchItem, ForwardResult>> _batchers = new();
    private readonly ConcurrentDictionary<ModelVersion, int> _maxBatchSizes = new();
    private int _disposed;

    /// <summary>Batchers alive now (one per model version and variant that has served a request).</summary>
    public int BatcherCount => _batchers.Count;

    public async ValueTask<InferenceExecution> ExecuteAsync(
        ModelVersion model, ExecutionVariant variant, ForwardInput input, BatchRequestOptions scheduling, CancellationToken cancellationToken)
    {
        if (model.IsRetired || Volatile.Read(ref _disposed) != 0)
        {
            // Resolved just before an unload or shutdown drained its batchers: run it alone rather than revive a queue.
            return await new DirectInferenceExecutor(time).ExecuteAsync(model, variant, input, scheduling, cancellationToken).ConfigureAwait(false);
        }

        // A request carrying more sequences than a batch may hold is a batch of its own: it runs alone, unqueued.
        if (input.Batch > _maxBatchSizes.GetOrAdd(model, static m => ReadOptions(m.Manifest, m.ModelName).MaxBatchSize))
        {
            return await new DirectInferenceExecutor(time).ExecuteAsync(model, variant, input, scheduling, cancellationToken).ConfigureAwait(false);
        }

        var batcher = _batchers.GetOrAdd((model, variant.Name), static (key, self) => self.Create(key.Model, key.Variant), this);
        if (model.IsRetired && _batchers.TryRemove(new KeyValuePair<(ModelVersion, string), DynamicBatcher<BatchItem, ForwardResult>>((model, variant.Name), batcher)))
        {
            // Created after the drain: drain it too once this request is in.
            _ = Task.Run(async () => await batcher.DisposeAsync().ConfigureAwait(false), CancellationToken.None);
        }

        try
        {
            var result = await batcher.SubmitAsync(new BatchItem(model, variant, input), scheduling, cancellationToken).ConfigureAwait(false);
            return new InferenceExecution(result.Response, result.QueueTime, result.ComputeTime, result.BatchSize);
        }
        catch (QueueFullException ex)
        {
            throw new InferenceException(InferenceErrorKind.Overloaded, $"model '{model.ModelName}' variant '{variant.Name}': {ex.Message}", ex)
            {
                RetryAfterSeconds = Math.Max(1, ex.RetryAfterSeconds),
            };
        }
        catch (ArgumentOutOfRangeException ex) when (ex.ParamName == "options")
        {
            throw InferenceException.Invalid($"parameter 'priority' or 'timeout' of model '{model.ModelName}': {ex.Message}");
        }
        catch (DeadlineExceededException ex)
        {
            throw new InferenceException(InferenceErrorKind.DeadlineExceeded, $"model '{model.ModelName}' variant '{variant.Name}': {ex.Message}", ex);
        }
        catch (ObjectDisposedException) when (model.IsRetired)
        {
            return await new DirectInferenceExecutor(time).ExecuteAsync(model, variant, input, scheduling, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads and validates a manifest's batching block, as loading a model does before it serves.</summary>
    public static DynamicBatcherOptions ReadOptions(ServingManifest manifest, string modelName)
    {
        var options = DynamicBatcherOptionsJson.Read(manifest.Batching, $"serving.json of '{modelName}': batching");
        options.ThrowIfInvalid(modelName);
        return options;
    }

    /// <summary>Stops the batchers of retired versions after running what they have queued (unload and reload drain).</summary>
    public async Task DrainAsync(IEnumerable<ModelVersion> retired)
    {
        var set = retired.ToHashSet();
        foreach (var version in set)
        {
            _maxBatchSizes.TryRemove(version, out _);
        }

        var draining = new List<Task>();
        foreach (var entry in _batchers)
        {
            if (set.Contains(entry.Key.Model) && _batchers.TryRemove(entry))
            {
                draining.Add(entry.Value.DisposeAsync().AsTask());
            }
        }

        await Task.WhenAll(draining).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        Interlocked.Exchange(ref _disposed, 1);
        await DrainAsync(_batchers.Keys.Select(k => k.Model)).ConfigureAwait(false);
    }

    private DynamicBatcher<BatchItem, ForwardResult> Create(ModelVersion model, string variant)
    {
        var options = ReadOptions(model.Manifest, model.ModelName);
        Log.BatcherCreated(logger, model.ModelName, model.Version, variant, options.Policy, options.MaxBatchSize, options.MaxQueueDelayMicroseconds, options.MaxQueueSize);
        return new DynamicBatcher<BatchItem, ForwardResult>(
            new ForwardBatchExecutor(time), options, time, metrics, new VariantLabels(model.ModelName, model.Version, variant), logger);
    }

    internal sealed record BatchItem(ModelVersion Model, ExecutionVariant Variant, ForwardInput Input);

    /// <summary>Concatenates windows, runs one forward per variant build in the batch and splits the result.</summary>
    internal sealed class ForwardBatchExecutor(TimeProvider time) : IBatchExecutor<BatchItem, ForwardResult>
    {
        public int GetSequenceLength(BatchItem request) => request.Input.Time;

        public int GetBatchSize(BatchItem request) => request.Input.Batch;

        public ValueTask<IReadOnlyList<ForwardResult>> ExecuteAsync(IReadOnlyList<BatchItem> batch, CancellationToken cancellationToken)
        {
            var results = new ForwardResult[batch.Count];
            foreach (var group in Enumerable.Range(0, batch.Count).GroupBy(i => (batch[i].Model, batch[i].Variant)))
            {
                var members = group.ToArray();
                var model = group.Key.Model;
                var inputStarted = time.GetTimestamp();
                var input = members.Length == 1 ? batch[members[0]].Input : Concatenate(members.Select(i => batch[i].Input).ToArray(), model.Configuration);
                var inferStarted = time.GetTimestamp();
                var result = group.Key.Variant.Forward(model, input);
                var outputStarted = time.GetTimestamp();
                if (members.Length == 1)
                {
                    results[members[0]] = result;
                }
                else
                {
                    var split = Split(result, members.Select(i => batch[i].Input).ToArray(), input, model.Configuration);
                    for (var m = 0; m < members.Length; m++)
                    {
                        results[members[m]] = split[m];
                    }
                }

                var finished = time.GetTimestamp();
                model.Statistics.RecordExecution(
                    input.Batch,
                    Nanoseconds(time.GetElapsedTime(inputStarted, inferStarted)),
                    Nanoseconds(time.GetElapsedTime(inferStarted, outputStarted)),
                    Nanoseconds(time.GetElapsedTime(outputStarted, finished)));
            }

            return ValueTask.FromResult<IReadOnlyList<ForwardResult>>(results);
        }

        private static long Nanoseconds(TimeSpan span) => span.Ticks * 100;

        /// <summary>One padded input: sequences in request order, each padded to the longest time with its length recorded.</summary>
        internal static ForwardInput Concatenate(IReadOnlyList<ForwardInput> inputs, ModelConfiguration configuration)
        {
            var batch = inputs.Sum(i => i.Batch);
            var time = inputs.Max(i => i.Time);
            var lengths = new int[batch];
            var tokens = configuration.InputKind == ModelConfiguration.TokenInput;
            var channels = tokens ? 1 : configuration.InputChannels;
            var data = tokens ? null : new float[(long)batch * time * channels];
            var ids = tokens ? new int[(long)batch * time] : null;
            var row = 0;
            foreach (var input in inputs)
            {
                for (var b = 0; b < input.Batch; b++, row++)
                {
                    lengths[row] = input.Lengths?[b] ?? input.Time;
                    var count = input.Time * channels;
                    if (tokens)
                    {
                        Array.Copy(input.TokenIds!, (long)b * count, ids!, (long)row * time * channels, count);
                    }
                    else
                    {
                        Array.Copy(input.Values!, (long)b * count, data!, (long)row * time * channels, count);
                    }
                }
            }

            return new ForwardInput { Batch = batch, Time = time, Values = data, TokenIds = ids, Lengths = lengths };
        }

        /// <summary>
        /// Each request's rows of the output, and its attention pairs. Dense pairs are exact (sum of length² times layers
        /// and heads). Computed pairs are exact when the batch's sequences share one length (the pattern's count then is
        /// the same for each sequence); otherwise they are the batch's density applied to the request's dense pairs.
        /// </summary>
        internal static ForwardResult[] Split(ForwardResult result, IReadOnlyList<ForwardInput> inputs, ForwardInput batched, ModelConfiguration configuration)
        {
            var classification = result.Shape.Length == 2;
            var outDim = result.Shape[^1];
            var perLayerHead = (long)configuration.NLayers * configuration.NHeads;
            var oneLength = batched.Lengths!.Distinct().Count() == 1;
            var split = new ForwardResult[inputs.Count];
            var row = 0;
            for (var r = 0; r < inputs.Count; r++)
            {
                var input = inputs[r];
                float[] output;
                int[] shape;
                if (classification)
                {
                    output = new float[input.Batch * outDim];
                    Array.Copy(result.Output, (long)row * outDim, output, 0, output.Length);
                    shape = [input.Batch, outDim];
                }
                else
                {
                    output = new float[(long)input.Batch * input.Time * outDim];
                    for (var b = 0; b < input.Batch; b++)
                    {
                        Array.Copy(result.Output, (long)(row + b) * batched.Time * outDim, output, (long)b * input.Time * outDim, input.Time * outDim);
                    }

                    shape = [input.Batch, input.Time, outDim];
                }

                long dense = 0;
                for (var b = 0; b < input.Batch; b++)
                {
                    long length = batched.Lengths![row + b];
                    dense += length * length * perLayerHead;
                }

                var computed = oneLength
                    ? result.ComputedPairs / batched.Batch * input.Batch
                    : (long)Math.Round(result.Density * dense);
                split[r] = new ForwardResult { Output = output, Shape = shape, ComputedPairs = computed, DensePairs = dense };
                row += input.Batch;
            }

            return split;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.BatcherCreated, Level = LogLevel.Information,
            Message = "Batching {Model} version {Version} variant {Variant}: policy {Policy}, max batch {MaxBatchSize}, queue delay {DelayUs} us (delay policy only), max queue {MaxQueueSize}")]
        public static partial void BatcherCreated(ILogger logger, string model, string version, string variant, string policy, int maxBatchSize, long delayUs, int maxQueueSize);
    }
}

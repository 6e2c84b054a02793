using System.Globalization;
using SparseInference.Models;
using SparseInference.Serving.Admission;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Metrics;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Protocol;

/// <summary>
/// The protocol's inference logic, shared by REST and gRPC: resolves the model, checks every input against the
/// model's tensor contract before it reaches the engine, routes it to a variant (<see cref="VariantRouter"/>: override,
/// sticky, weighted, shadow), applies the line's baseline when the request's line has one (docs/baselines.md: raw readings
/// standardized in, calibrated <c>score</c> and <c>anomaly</c> out), runs the forward through the executor (the batcher)
/// and shapes outputs.
/// </summary>
public sealed class InferenceService(
    ModelRepository repository,
    IInferenceExecutor executor,
    VariantRouter router,
    TimeProvider time,
    ServingMetrics? metrics = null,
    InferenceRequestLog? requestLog = null,
    InFlightMemoryBudget? memoryBudget = null,
    LineBaselines? baselines = null)
{
    /// <summary>Triton's per-request queue timeout in microseconds.</summary>
    public const string TimeoutParameter = "timeout";

    /// <summary>Triton's per-request priority level (1 is the highest; 0 the model's default).</summary>
    public const string PriorityParameter = "priority";

    /// <summary>Largest queue timeout a request may ask for: an hour, far beyond any useful wait for a forward.</summary>
    public const long MaxTimeoutMicroseconds = 3_600_000_000;

    /// <summary>Largest element count of one input; keeps shape products far from overflowing an array index.</summary>
    public const int MaxElements = int.MaxValue / 8;

    public ModelRepository Repository => repository;

    /// <summary>Runs a request and returns its response (its admitted memory is given back on return).</summary>
    public async ValueTask<InferenceResponse> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        InferenceResponse? answer = null;
        await InferAsync(request, (response, _) =>
        {
            answer = response;
            return ValueTask.CompletedTask;
        }, cancellationToken).ConfigureAwait(false);
        return answer!;
    }

    /// <summary>
    /// Runs a request and hands its response to <paramref name="respond"/> (the transport writing it) while the
    /// request's memory is still admitted. A failure in <paramref name="respond"/> is the request's failure in the
    /// metrics and statistics, as any other.
    /// </summary>
    public async ValueTask InferAsync(InferenceRequest request, Func<InferenceResponse, CancellationToken, ValueTask> respond, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(respond);
        var model = repository.Resolve(request.ModelName, request.ModelVersion);
        var started = time.GetTimestamp();
        var labels = new VariantLabels(model.ModelName, model.Version, "");
        using var receive = InferenceTracing.StartReceive(model.ModelName, request.Protocol);
        InFlightMemoryBudget.Lease? admitted = null;
        try
        {
            var contract = ModelTensorContract.For(model.Configuration);
            var (forwardInput, values) = BuildForwardInput(request, model.Configuration, contract);
            var scheduling = Scheduling(request);
            var routing = RoutingContextOf(request);
            var decision = Route(routing, model);
            var variant = decision.VariantName;
            labels = labels with { Variant = variant };
            // After routing: the variant that serves the request picks the baseline's residual statistics.
            var scoring = Scoring(request, model, variant, routing.Key);
            if (scoring?.Baseline is not null)
            {
                values = scoring.ModelInput(values!);
                forwardInput = new ForwardInput { Batch = forwardInput.Batch, Time = forwardInput.Time, Values = values };
            }

            var requested = SelectOutputs(request, contract);
            admitted = Admit(model, forwardInput, decision.Primary.Spec, labels);
            var inputDone = time.GetTimestamp();

            var executeStarted = time.GetUtcNow();
            var target = new ExecutionVariant(
                variant,
                decision.Primary.Generation,
                decision.Primary.Spec,
                decision.Primary.LoadedModel is VersionVariantModel ? null : decision.Primary.LoadedModel);
            InferenceExecution execution;
            try
            {
                execution = await executor.ExecuteAsync(model, target, forwardInput, scheduling, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (Outcome(ex, cancellationToken) == RequestOutcomes.Error)
            {
                // Only failures of the server count against the variant: a client's deadline, cancellation or bad
                // input, and load shedding, say nothing about it (and would let any client trip its guardrails).
                router.ReportFailed(decision, time.GetElapsedTime(inputDone));
                throw;
            }

            var outputStarted = time.GetTimestamp();
            InferenceTracing.RecordExecution(receive, executeStarted, time.GetUtcNow(), execution.Queue, execution.Compute, labels, forwardInput.Batch);

            var outputs = BuildOutputs(model, forwardInput, values, execution.Result, requested, scoring);
            var parameters = new Dictionary<string, InferenceParameter>(StringComparer.Ordinal)
            {
                [InferenceRequest.VariantParameter] = InferenceParameter.Of(variant),
                ["computed_pairs"] = InferenceParameter.Of(execution.Result.ComputedPairs),
                ["dense_pairs"] = InferenceParameter.Of(execution.Result.DensePairs),
            };
            scoring?.AddResponseParameters(parameters);
            var response = new InferenceResponse
            {
                ModelName = model.ModelName,
                ModelVersion = model.Version,
                Id = request.Id,
                Variant = variant,
                Parameters = parameters,
                Outputs = outputs,
            };

            var outputDone = time.GetTimestamp();
            await respond(response, cancellationToken).ConfigureAwait(false);
            var finished = time.GetTimestamp();

            // The shadow (if any) gets its own copy: the forward input is the caller's and stays untouched.
            router.ReportCompleted(decision, forwardInput, execution.Result, time.GetElapsedTime(inputDone, outputStarted));
            InferenceTracing.RecordRespond(receive, time.GetUtcNow() - time.GetElapsedTime(outputStarted, finished), time.GetUtcNow(), labels, forwardInput.Batch);
            InferenceTracing.Complete(receive, RequestOutcomes.Success);
            requestLog?.Completed(labels, request.Protocol, forwardInput.Batch, execution.Queue, execution.Compute, RequestOutcomes.Success);
            model.Statistics.RecordSuccess(
                forwardInput.Batch,
                Nanoseconds(time.GetElapsedTime(started, finished)),
                Nanoseconds(execution.Queue),
                Nanoseconds(time.GetElapsedTime(started, inputDone)),
                Nanoseconds(execution.Compute),
                Nanoseconds(time.GetElapsedTime(outputStarted, outputDone)),
                time.GetUtcNow());
            if (scoring is not null)
            {
                baselines?.RecordScored(model.ModelName, scoring.Baseline is not null);
            }

            if (metrics is not null)
            {
                metrics.RecordRequest(labels, request.Protocol, RequestOutcomes.Success, time.GetElapsedTime(started, finished).TotalSeconds);
                // Queue and compute durations are recorded by the batcher, once per request and per batch.
                // Pairs are summed over layers and heads already; one pair costs a q·k and an a·v multiply-add per head dimension.
                var flopsPerPair = 4L * model.Configuration.DModel / Math.Max(1, model.Configuration.NHeads);
                metrics.RecordForward(labels, execution.Result.ComputedPairs, execution.Result.DensePairs, flopsPerPair);
                metrics.RecordVariantForward(labels, decision.Primary.Spec.Sparsity, WorkingBufferEstimate.Bytes(forwardInput.Batch, forwardInput.Time, model.Configuration.DModel, model.Configuration.NLayers, execution.Result.ComputedPairs), ModelWeightBytes.Of(model));
            }
        }
        catch (Exception ex)
        {
            var elapsed = time.GetElapsedTime(started);
            model.Statistics.RecordFailure(Nanoseconds(elapsed));
            var outcome = Outcome(ex, cancellationToken);
            metrics?.RecordRequest(labels, request.Protocol, outcome, elapsed.TotalSeconds);
            if (outcome == RequestOutcomes.Invalid)
                metrics?.RecordRejection(labels, RejectionReasons.Invalid);
            InferenceTracing.Complete(receive, outcome);
            requestLog?.Completed(labels, request.Protocol, 0, TimeSpan.Zero, TimeSpan.Zero, outcome);
            throw;
        }
        finally
        {
            admitted?.Dispose();
        }
    }

    /// <summary>
    /// Admits the request's estimated memory. A request the batcher may pad to longer batch-mates is admitted for
    /// its padded share; one larger than a batch runs alone, unpadded.
    /// </summary>
    private InFlightMemoryBudget.Lease? Admit(ModelVersion model, ForwardInput input, AttentionSpec spec, VariantLabels labels)
    {
        if (memoryBudget is null)
        {
            return null;
        }

        var padding = 1.0;
        if (executor is BatchingInferenceExecutor && input.Batch <= model.BatchingOptions.MaxBatchSize)
        {
            var waste = model.BatchingOptions.MaxPaddingWaste;
            padding = Math.Min(waste >= 1 ? double.PositiveInfinity : 1 / (1 - waste), (double)model.Configuration.MaxSeqLen / input.Time);
        }

        var bytes = RequestMemoryEstimate.Bytes(model.Configuration, input, spec, padding);
        try
        {
            return memoryBudget.Admit(bytes, $"a request of {input.Batch} x {input.Time} steps for model '{model.ModelName}'");
        }
        catch (InferenceException)
        {
            metrics?.RecordRejection(labels, RejectionReasons.Memory);
            throw;
        }
    }

    private static string Outcome(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        InferenceException { Kind: InferenceErrorKind.InvalidArgument } => RequestOutcomes.Invalid,
        InferenceException { Kind: InferenceErrorKind.Unavailable or InferenceErrorKind.ResourceExhausted or InferenceErrorKind.Overloaded or InferenceErrorKind.DeadlineExceeded } => RequestOutcomes.Rejected,
        OperationCanceledException when cancellationToken.IsCancellationRequested => RequestOutcomes.Cancelled,
        _ => RequestOutcomes.Error,
    };

    private static long Nanoseconds(TimeSpan span) => span.Ticks * 100;

    internal static (ForwardInput Input, float[]? Values) BuildForwardInput(InferenceRequest request, ModelConfiguration configuration, ModelTensorContract contract)
    {
        var expected = contract.Input;
        InferenceInput? input = null;
        foreach (var candidate in request.Inputs)
        {
            if (candidate.Name != expected.Name)
            {
                throw InferenceException.Invalid(
                    $"unknown input '{candidate.Name}': model '{request.ModelName}' expects inputs [{string.Join(", ", contract.Inputs.Select(i => i.Name))}].");
            }

            if (input is not null)
            {
                throw InferenceException.Invalid($"input '{candidate.Name}' is given more than once.");
            }

            input = candidate;
        }

        if (input is null)
        {
            throw InferenceException.Invalid($"missing input '{expected.Name}': expected {expected.Datatype} with shape {TensorData.FormatShape(expected.Shape)}.");
        }

        var isTokens = configuration.InputKind == ModelConfiguration.TokenInput;
        var datatypeOk = isTokens ? input.Datatype is TensorDatatypes.Int64 or TensorDatatypes.Int32 : input.Datatype == TensorDatatypes.Fp32;
        if (!datatypeOk)
        {
            var allowed = isTokens ? "INT64 or INT32" : expected.Datatype;
            throw InferenceException.Invalid($"input '{input.Name}': datatype must be {allowed}, got '{input.Datatype}'.");
        }

        var shape = input.Shape;
        if (shape.Length != expected.Shape.Length)
        {
            throw InferenceException.Invalid(
                $"input '{input.Name}': shape must have {expected.Shape.Length} dimensions {TensorData.FormatShape(expected.Shape)}, got {shape.Length} dimensions {TensorData.FormatShape(shape)}.");
        }

        long count = 1;
        for (var d = 0; d < shape.Length; d++)
        {
            if (shape[d] < 1)
            {
                throw InferenceException.Invalid($"input '{input.Name}': shape[{d}] must be at least 1, got {shape[d]} in {TensorData.FormatShape(shape)}.");
            }

            if (expected.Shape[d] >= 0 && shape[d] != expected.Shape[d])
            {
                throw InferenceException.Invalid(
                    $"input '{input.Name}': shape[{d}] must be {expected.Shape[d]} (model shape {TensorData.FormatShape(expected.Shape)}), got {shape[d]} in {TensorData.FormatShape(shape)}.");
            }

            if (shape[d] > MaxElements || count > MaxElements / shape[d])
            {
                throw InferenceException.Invalid($"input '{input.Name}': shape {TensorData.FormatShape(shape)} holds more than {MaxElements} elements.");
            }

            count *= shape[d];
        }

        if (shape[1] > configuration.MaxSeqLen)
        {
            throw InferenceException.Invalid(
                $"input '{input.Name}': sequence length (shape[1]) must be at most max_seq_len {configuration.MaxSeqLen}, got {shape[1]}.");
        }

        var batch = (int)shape[0];
        var steps = (int)shape[1];
        if (isTokens)
        {
            var raw = input.Data.ReadIntegers(input, (int)count);
            var ids = new int[raw.Length];
            for (var i = 0; i < raw.Length; i++)
            {
                if (raw[i] < 0 || raw[i] >= configuration.VocabSize)
                {
                    throw InferenceException.Invalid($"input '{input.Name}': data[{i}] is token id {raw[i]}, expected a value in [0, {configuration.VocabSize}).");
                }

                ids[i] = (int)raw[i];
            }

            return (new ForwardInput { Batch = batch, Time = steps, TokenIds = ids }, null);
        }

        var values = input.Data.ReadFloat32(input, (int)count);
        for (var i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                throw InferenceException.Invalid(
                    $"input '{input.Name}': data[{i}] must be a finite number, got {values[i].ToString(CultureInfo.InvariantCulture)}.");
            }
        }

        return (new ForwardInput { Batch = batch, Time = steps, Values = values }, values);
    }

    private RoutingContext RoutingContextOf(InferenceRequest request)
    {
        if (request.Parameters.TryGetValue(InferenceRequest.VariantParameter, out var parameter) && parameter.Value is not string)
        {
            throw InferenceException.Invalid($"parameter 'variant' must be a string, got {parameter.KindName} {parameter}.");
        }

        return router.ContextFor(request.Parameters, request.HeaderLookup);
    }

    private RouteDecision Route(RoutingContext routing, ModelVersion model)
    {
        try
        {
            return router.Route(model.ModelName, routing);
        }
        catch (VariantRoutingException ex)
        {
            throw InferenceException.Invalid($"parameter 'variant' of model '{model.ModelName}': {ex.Message}");
        }
    }

    /// <summary>
    /// How the request's readings are scored (docs/baselines.md): with the baseline this replica applies to the request's
    /// line (its routing key), unless the request asks for none (<c>baseline: "none"</c>); as configured otherwise. Null for
    /// models without a <c>score</c> output. A baseline that does not fit the model version or variant serving the request
    /// is refused (400), and a line whose stored baseline cannot be read is refused (503) rather than scored without it.
    /// </summary>
    private LineScoring? Scoring(InferenceRequest request, ModelVersion model, string variant, string? line)
    {
        if (!ModelTensorContract.HasScore(model.Configuration))
        {
            return null;
        }

        if (LineScoring.BaselineAllowed(request.Parameters) && line is not null && baselines?.Find(model.ModelName, line) is { } applied)
        {
            return applied.Baseline is { } baseline
                ? LineScoring.With(baseline, model.ModelName, model.Version, variant, model.Configuration)
                : throw new InferenceException(
                    InferenceErrorKind.Unavailable,
                    $"the baseline of line '{line}' of model '{model.ModelName}' cannot be read from the state store ({applied.Problem}); the request was not scored without it: onboard the line again.");
        }

        return LineScoring.WithoutBaseline(model.Configuration);
    }

    /// <summary>Priority and queue timeout from the request's <c>priority</c> and <c>timeout</c> (µs) parameters and the transport deadline.</summary>
    internal BatchRequestOptions Scheduling(InferenceRequest request)
    {
        var priority = 0L;
        if (request.Parameters.TryGetValue(PriorityParameter, out var p))
        {
            priority = p.Value is long l && l >= 0 && l <= int.MaxValue
                ? l
                : throw InferenceException.Invalid($"parameter 'priority' must be a non-negative integer, got {p.KindName} {p}.");
        }

        var timeout = 0L;
        if (request.Parameters.TryGetValue(TimeoutParameter, out var t))
        {
            timeout = t.Value is long l && l >= 0 && l <= MaxTimeoutMicroseconds
                ? l
                : throw InferenceException.Invalid(
                    $"parameter 'timeout' must be an integer of microseconds in [0, {MaxTimeoutMicroseconds}] (at most one hour), got {t.KindName} {t}.");
        }

        if (request.Deadline is { } deadline)
        {
            var remaining = (long)Math.Floor((deadline - time.GetUtcNow()).TotalMicroseconds);
            if (remaining <= 0)
            {
                throw new InferenceException(InferenceErrorKind.DeadlineExceeded, "the request's deadline passed before it was scheduled; it was not executed.");
            }

            timeout = timeout == 0 ? remaining : Math.Min(timeout, remaining);
        }

        return new BatchRequestOptions((int)priority, timeout);
    }

    internal static IReadOnlyList<RequestedOutput> SelectOutputs(InferenceRequest request, ModelTensorContract contract)
    {
        if (request.Outputs.Count == 0)
        {
            return [.. contract.Outputs.Select(o => new RequestedOutput(o.Name, request.BinaryOutputByDefault))];
        }

        foreach (var output in request.Outputs)
        {
            if (!contract.Outputs.Any(o => o.Name == output.Name))
            {
                throw InferenceException.Invalid(
                    $"unknown output '{output.Name}': model '{request.ModelName}' has outputs [{string.Join(", ", contract.Outputs.Select(o => o.Name))}].");
            }
        }

        return request.Outputs;
    }

    private static List<InferenceOutput> BuildOutputs(
        ModelVersion model, ForwardInput input, float[]? values, ForwardResult result, IReadOnlyList<RequestedOutput> requested, LineScoring? scoring)
    {
        var configuration = model.Configuration;
        var isClassification = configuration.Head == ModelConfiguration.ClassificationHead;
        long[] expectedShape = isClassification ? [input.Batch, configuration.OutputDim] : [input.Batch, input.Time, configuration.OutputDim];
        if (!result.Shape.Select(d => (long)d).SequenceEqual(expectedShape) || result.Output.Length != expectedShape.Aggregate(1L, (a, b) => a * b))
        {
            throw new InferenceException(
                InferenceErrorKind.Internal,
                $"model '{model.ModelName}' returned output shape [{string.Join(", ", result.Shape)}] with {result.Output.Length} values, expected {TensorData.FormatShape(expectedShape)}.");
        }

        float[]? score = null;
        var outputs = new List<InferenceOutput>(requested.Count);
        foreach (var wanted in requested)
        {
            switch (wanted.Name)
            {
                case ModelTensorContract.OutputName or ModelTensorContract.LogitsName:
                    var output = scoring is null ? result.Output : scoring.Output(result.Output);
                    outputs.Add(new InferenceOutput { Name = wanted.Name, Datatype = TensorDatatypes.Fp32, Shape = expectedShape, Float32 = output, Binary = wanted.Binary });
                    break;
                case ModelTensorContract.ScoreName:
                    score ??= scoring!.Score(values!, result.Output);
                    outputs.Add(new InferenceOutput { Name = wanted.Name, Datatype = TensorDatatypes.Fp32, Shape = [input.Batch, input.Time], Float32 = score, Binary = wanted.Binary });
                    break;
                case ModelTensorContract.AnomalyName:
                    score ??= scoring!.Score(values!, result.Output);
                    outputs.Add(new InferenceOutput { Name = wanted.Name, Datatype = TensorDatatypes.Bool, Shape = [input.Batch, input.Time], Bool = scoring!.Anomaly(score, input.Time)!, Binary = wanted.Binary });
                    break;
            }
        }

        return outputs;
    }

    /// <summary>Per time step: the mean over channels of (output − input)².</summary>
    internal static float[] ReconstructionScore(float[] input, float[] output, int channels)
    {
        var steps = input.Length / channels;
        var score = new float[steps];
        for (var s = 0; s < steps; s++)
        {
            double sum = 0;
            var offset = s * channels;
            for (var c = 0; c < channels; c++)
            {
                double diff = output[offset + c] - input[offset + c];
                sum += diff * diff;
            }

            score[s] = (float)(sum / channels);
        }

        return score;
    }
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.Admission;
using SparseInference.Serving.Repository;
using SparseInference.Serving;
using SparseInference.Serving.Protocol;

namespace SparseInference.Server.Rest;

/// <summary>The Open Inference Protocol REST API with Triton's binary data, statistics and repository extensions.</summary>
internal static class RestEndpoints
{
    public const string Platform = "sparseinference_encoder";

    public static RouteGroupBuilder MapOpenInferenceRest(this IEndpointRouteBuilder endpoints)
    {
        var v2 = endpoints.MapGroup("/v2");
        v2.MapGet("/health/live", Live);
        v2.MapGet("/health/ready", Ready);
        v2.MapGet("", ServerMetadata);
        v2.MapGet("/models/stats", AllStatistics);
        foreach (var prefix in new[] { "/models/{model}", "/models/{model}/versions/{version}" })
        {
            v2.MapGet(prefix, ModelMetadata);
            v2.MapGet(prefix + "/ready", ModelReady);
            v2.MapPost(prefix + "/infer", Infer);
            v2.MapGet(prefix + "/stats", ModelStatistics);
        }

        // The index is read-only and what Triton clients and tools use to discover models and why one is not ready.
        // Loading and unloading change what every client is served: they answer on the admin port only.
        v2.MapPost("/repository/index", RepositoryIndex);
        v2.MapPost("/repository/models/{model}/load", ModelControlRefused);
        v2.MapPost("/repository/models/{model}/unload", ModelControlRefused);
        return v2;
    }

    /// <summary>What a load or unload on the inference port is told: where model control lives and what it needs.</summary>
    public const string ModelControlElsewhere =
        "model control (repository load and unload) is not served on the inference ports; send it to the admin port with the admin bearer token";

    private static Task ModelControlRefused(HttpContext context) =>
        WriteError(context, InferenceErrorKind.PermissionDenied, ModelControlElsewhere + $" (POST {context.Request.Path} there).");

    private static Task Live(HttpContext context)
    {
        // Fails only on a persistent engine fault (EngineFaultMonitor), so that the orchestrator restarts the process.
        var live = context.RequestServices.GetRequiredService<ServerState>().IsLive;
        return WriteJson(context, live ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, new LiveBody(live), RestJsonContext.Default.LiveBody);
    }

    private static Task Ready(HttpContext context)
    {
        var ready = context.RequestServices.GetRequiredService<ServerState>().IsReady;
        return WriteJson(context, ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, new ReadyBody(ready), RestJsonContext.Default.ReadyBody);
    }

    private static Task ServerMetadata(HttpContext context) =>
        WriteJson(context, StatusCodes.Status200OK, new ServerMetadataBody(ServerState.ServerName, ServerState.Version, ServerState.Extensions), RestJsonContext.Default.ServerMetadataBody);

    private static Task ModelMetadata(HttpContext context) => Guard(context, () =>
    {
        var repository = Repository(context);
        var model = repository.Resolve(RouteModel(context), RouteVersion(context));
        var contract = ModelTensorContract.For(model.Configuration);
        var body = new ModelMetadataBody(
            model.ModelName,
            repository.Versions(model.ModelName),
            Platform,
            [.. contract.Inputs.Select(t => new TensorMetadataBody(t.Name, t.Datatype, t.Shape))],
            [.. contract.Outputs.Select(t => new TensorMetadataBody(t.Name, t.Datatype, t.Shape))],
            [.. model.Variants.Keys],
            model.DefaultVariant);
        return WriteJson(context, StatusCodes.Status200OK, body, RestJsonContext.Default.ModelMetadataBody);
    });

    private static Task ModelReady(HttpContext context) => Guard(context, () =>
    {
        var model = Repository(context).Resolve(RouteModel(context), RouteVersion(context));
        return WriteJson(context, StatusCodes.Status200OK, new ModelReadyBody(model.ModelName, model.Version, true), RestJsonContext.Default.ModelReadyBody);
    });

    private static Task Infer(HttpContext context) => Guard(context, async () =>
    {
        int? headerLength = null;
        if (context.Request.Headers.TryGetValue(RestInferenceResponseWriter.HeaderLengthHeader, out var headerValue))
        {
            headerLength = int.TryParse(headerValue, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed)
                ? parsed
                : throw InferenceException.Invalid($"header {RestInferenceResponseWriter.HeaderLengthHeader} must be a non-negative integer, got '{headerValue}'.");
        }

        // The body is held until the response is written (binary tensor data is parsed in place): admitted first.
        var budget = context.RequestServices.GetService<InFlightMemoryBudget>();
        using var admitted = context.Request.ContentLength is long declared ? budget?.Admit(declared, "the request body") : null;
        var body = await ReadBodyAsync(context).ConfigureAwait(false);
        using var admittedAfterReading = admitted is null ? budget?.Admit(body.Length, "the request body") : null;

        var read = RestInferenceRequestReader.Parse(body, headerLength, RouteModel(context), RouteVersion(context));
        var headers = context.Request.Headers;
        var request = read.WithHeaders(name => headers.TryGetValue(name, out var value) ? value.ToString() : null, null);
        var service = context.RequestServices.GetRequiredService<InferenceService>();
        await service.InferAsync(request, (response, _) => new ValueTask(RestInferenceResponseWriter.WriteAsync(context, response)), context.RequestAborted)
            .ConfigureAwait(false);
    });

    private static Task ModelStatistics(HttpContext context) => Guard(context, () =>
    {
        var repository = Repository(context);
        var name = RouteModel(context);
        var version = RouteVersion(context);
        IEnumerable<ModelVersion> versions = version is null
            ? repository.LoadedVersions().Where(v => v.ModelName == name)
            : [repository.Resolve(name, version)];
        var list = versions.ToList();
        if (list.Count == 0)
        {
            // Resolve names the reason: unknown model (404) or not loaded (503).
            list.Add(repository.Resolve(name, null));
        }

        return WriteStatistics(context, list);
    });

    private static Task AllStatistics(HttpContext context) => Guard(context, () => WriteStatistics(context, Repository(context).LoadedVersions()));

    internal static Task RepositoryIndex(HttpContext context) => Guard(context, async () =>
    {
        var body = await ReadBodyAsync(context).ConfigureAwait(false);
        var readyOnly = false;
        if (!body.IsEmpty)
        {
            var request = Deserialize(body, RestJsonContext.Default.RepositoryIndexRequestBody);
            readyOnly = request?.Ready ?? false;
        }

        var entries = Repository(context).Index(readyOnly).Select(e => new RepositoryIndexEntryBody(e.Name, e.Version, e.State, e.Reason)).ToList();
        await WriteJson(context, StatusCodes.Status200OK, entries, RestJsonContext.Default.ListRepositoryIndexEntryBody).ConfigureAwait(false);
    });

    /// <summary>Triton's load: <c>{"parameters": {"config": "&lt;serving.json&gt;"}}</c> overrides the model's serving.json.</summary>
    internal static Task RepositoryLoad(HttpContext context) => Guard(context, async () =>
    {
        var body = await ReadBodyAsync(context).ConfigureAwait(false);
        string? configOverride = null;
        if (!body.IsEmpty)
        {
            configOverride = ReadConfigOverride(body);
        }

        Repository(context).Load(RouteModel(context), configOverride);
        context.Response.StatusCode = StatusCodes.Status200OK;
    });

    internal static Task RepositoryUnload(HttpContext context) => Guard(context, () =>
    {
        Repository(context).Unload(RouteModel(context));
        context.Response.StatusCode = StatusCodes.Status200OK;
        return Task.CompletedTask;
    });

    /// <summary>Largest serving.json override a load accepts; real manifests are a few kilobytes.</summary>
    public const int MaxConfigOverrideBytes = 1 << 20;

    /// <summary>Reads <c>{"parameters": {"config": "&lt;serving.json text&gt;"}}</c>; other parameters are ignored.</summary>
    private static string? ReadConfigOverride(ReadOnlyMemory<byte> body)
    {
        if (body.Length > MaxConfigOverrideBytes + 1024)
        {
            throw new InferenceException(
                InferenceErrorKind.ResourceExhausted, $"load request body holds {body.Length} bytes; a serving.json override may hold at most {MaxConfigOverrideBytes}.");
        }

        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw InferenceException.Invalid($"load request body must be a JSON object, got a JSON {document.RootElement.ValueKind}.");
            }

            if (!document.RootElement.TryGetProperty("parameters", out var parameters))
            {
                return null;
            }

            if (parameters.ValueKind != JsonValueKind.Object)
            {
                throw InferenceException.Invalid($"field 'parameters' must be a JSON object, got a JSON {parameters.ValueKind}.");
            }

            if (!parameters.TryGetProperty("config", out var config))
            {
                return null;
            }

            return config.ValueKind == JsonValueKind.String
                ? config.GetString()
                : throw InferenceException.Invalid($"parameters.config must be a string holding serving.json text, got a JSON {config.ValueKind}.");
        }
        catch (JsonException ex)
        {
            throw InferenceException.Invalid($"malformed JSON request body: {ex.Message}");
        }
    }

    private static Task WriteStatistics(HttpContext context, IReadOnlyList<ModelVersion> versions)
    {
        static DurationBody D(DurationStatistic s) => new(s.Count, s.Nanoseconds);
        var stats = versions.Select(v =>
        {
            var s = v.Statistics;
            return new ModelStatsBody(
                v.ModelName,
                v.Version,
                s.LastInferenceUnixMs,
                s.InferenceCount,
                s.ExecutionCount,
                new InferenceStatsBody(D(s.Success), D(s.Fail), D(s.Queue), D(s.ComputeInput), D(s.ComputeInfer), D(s.ComputeOutput), new DurationBody(0, 0), new DurationBody(0, 0)),
                [.. s.Batches.Select(b => new BatchStatsBody(b.BatchSize, D(b.ComputeInput), D(b.ComputeInfer), D(b.ComputeOutput)))]);
        }).ToList();
        return WriteJson(context, StatusCodes.Status200OK, new ModelStatsListBody(stats), RestJsonContext.Default.ModelStatsListBody);
    }

    private static T? Deserialize<T>(ReadOnlyMemory<byte> body, JsonTypeInfo<T> typeInfo)
    {
        try
        {
            return JsonSerializer.Deserialize(body.Span, typeInfo);
        }
        catch (JsonException ex)
        {
            throw InferenceException.Invalid($"malformed JSON request body: {ex.Message}");
        }
    }

    /// <summary>Reads the whole body; Kestrel's MaxRequestBodySize bounds it.</summary>
    private static async Task<ReadOnlyMemory<byte>> ReadBodyAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength is long length)
        {
            if (length == 0)
            {
                return ReadOnlyMemory<byte>.Empty;
            }

            if (length > int.MaxValue)
            {
                throw new InferenceException(InferenceErrorKind.ResourceExhausted, $"request body of {length} bytes is too large.");
            }

            var buffer = new byte[length];
            await request.Body.ReadExactlyAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            return buffer;
        }

        using var stream = new MemoryStream();
        await request.Body.CopyToAsync(stream, context.RequestAborted).ConfigureAwait(false);
        return stream.GetBuffer().AsMemory(0, (int)stream.Length);
    }

    private static ModelRepository Repository(HttpContext context) => context.RequestServices.GetRequiredService<ModelRepository>();

    private static string RouteModel(HttpContext context) => (string)context.Request.RouteValues["model"]!;

    private static string? RouteVersion(HttpContext context) => context.Request.RouteValues["version"] as string;

    private static async Task Guard(HttpContext context, Func<Task> handler)
    {
        try
        {
            await handler().ConfigureAwait(false);
        }
        catch (InferenceException ex) when (!context.Response.HasStarted)
        {
            await WriteError(context, ex.Kind, ex.Message, ex.RetryAfterSeconds).ConfigureAwait(false);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away mid-request; there is nobody to answer.
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException ex) when (!context.Response.HasStarted)
        {
            // Kestrel's body-size limit and malformed framing arrive here.
            context.Response.Clear();
            await WriteJson(context, ex.StatusCode, new ErrorBody(ex.Message), RestJsonContext.Default.ErrorBody).ConfigureAwait(false);
        }
        catch (Exception ex) when (!context.Response.HasStarted && ex is not OperationCanceledException)
        {
            // An engine exception in the request's batch, or a bug: 500 with a trace id the log line carries too.
            var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(RestEndpoints).FullName!);
            var message = SparseInference.Serving.Health.UnhandledFaults.Report(logger, "rest", $"{context.Request.Method} {context.Request.Path}", ex);
            await WriteError(context, InferenceErrorKind.Internal, message).ConfigureAwait(false);
        }
    }

    internal static Task WriteError(HttpContext context, InferenceErrorKind kind, string message, int? retryAfterSeconds = null)
    {
        context.Response.Clear();
        if (retryAfterSeconds is int retryAfter)
        {
            context.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        }

        return WriteJson(context, StatusFor(kind), new ErrorBody(message), RestJsonContext.Default.ErrorBody);
    }

    internal static int StatusFor(InferenceErrorKind kind) => kind switch
    {
        InferenceErrorKind.InvalidArgument => StatusCodes.Status400BadRequest,
        InferenceErrorKind.PermissionDenied => StatusCodes.Status403Forbidden,
        InferenceErrorKind.NotFound => StatusCodes.Status404NotFound,
        InferenceErrorKind.Unavailable => StatusCodes.Status503ServiceUnavailable,
        InferenceErrorKind.ResourceExhausted => StatusCodes.Status413PayloadTooLarge,
        InferenceErrorKind.Overloaded => StatusCodes.Status429TooManyRequests,
        InferenceErrorKind.DeadlineExceeded => StatusCodes.Status504GatewayTimeout,
        _ => StatusCodes.Status500InternalServerError,
    };

    private static Task WriteJson<T>(HttpContext context, int status, T value, JsonTypeInfo<T> typeInfo)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(context.Response.Body, value, typeInfo, context.RequestAborted);
    }
}

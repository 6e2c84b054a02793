using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Net.Http.Headers;
using SparseInference.Serving.Baselines;

namespace SparseInference.Server.Admin;

/// <summary>
/// The line-baseline admin API (docs/baselines.md, <i>Admin API</i>) over <see cref="LineOnboarding"/>: onboard, replace,
/// read, list, remove and recalibrate per model and line, behind the admin token. Lines are the rest of the path, so a
/// line key may hold '/' (e.g. <c>valve1/3</c>); '%2F' is read as '/' too.
/// </summary>
public static class BaselineEndpoints
{
    private static readonly string AcceptedTypes =
        $"{OnboardingData.JsonMediaType} ({{\"rows\": [[number, …], …]}}), {OnboardingData.CsvMediaType} (a header row naming the channels) or {OnboardingData.BaselineMediaType} (a computed baseline)";

    /// <summary>Maps the routes; the host puts them on the admin port.</summary>
    public static RouteGroupBuilder MapSparseInferenceBaselines(this IEndpointRouteBuilder endpoints)
    {
        var group = endpoints.MapGroup("/admin/models/{model}");
        group.AddEndpointFilter(AdminAuthorization.FilterAsync);

        group.MapGet("/baselines", (string model, LineOnboarding onboarding, HttpContext http) => Answer(async () =>
        {
            var summaries = await onboarding.ListAsync(model, http.RequestAborted).ConfigureAwait(false);
            return Results.Json(summaries.ToList(), BaselineAdminJsonContext.Relaxed.ListBaselineSummary);
        }));

        group.MapGet("/baselines/{**line}", (string model, string line, LineOnboarding onboarding, HttpContext http) => Answer(async () =>
            Baseline(http, await onboarding.GetAsync(model, LineOf(line), http.RequestAborted).ConfigureAwait(false))));

        group.MapPut("/baselines/{**line}", (string model, string line, string? version, LineOnboarding onboarding, HttpContext http) => Answer(async () =>
        {
            var key = LineOf(line);
            var ifMatch = IfMatch(http.Request);
            var mediaType = MediaType(http.Request);
            if (mediaType is not (OnboardingData.JsonMediaType or OnboardingData.CsvMediaType or OnboardingData.BaselineMediaType))
            {
                return Error(StatusCodes.Status415UnsupportedMediaType, $"Content-Type: expected {AcceptedTypes}, actual {(mediaType is null ? "none" : $"'{mediaType}'")}.");
            }

            var (body, tooLarge) = await ReadBodyAsync(http, onboarding.Options.MaxOnboardingBodyBytes).ConfigureAwait(false);
            if (tooLarge is not null)
            {
                return tooLarge;
            }

            if (mediaType == OnboardingData.BaselineMediaType)
            {
                return Baseline(http, await onboarding.StoreComputedAsync(model, key, body, ifMatch, http.RequestAborted).ConfigureAwait(false));
            }

            var target = onboarding.Target(model, version);
            var rows = Rows(mediaType, body, target);
            return Baseline(http, await onboarding.OnboardAsync(target, key, rows, ifMatch, http.RequestAborted).ConfigureAwait(false));
        }));

        group.MapDelete("/baselines/{**line}", (string model, string line, LineOnboarding onboarding, HttpContext http) => Answer(async () =>
        {
            await onboarding.DeleteAsync(model, LineOf(line), IfMatch(http.Request), http.RequestAborted).ConfigureAwait(false);
            return Results.NoContent();
        }));

        group.MapPost("/baselines:recalibrate", (string model, string? version, [FromQuery(Name = "line")] string[]? lines, LineOnboarding onboarding, HttpContext http) => Answer(async () =>
        {
            var outcomes = await onboarding.RecalibrateAsync(model, lines?.Select(LineOf).ToList(), version, http.RequestAborted).ConfigureAwait(false);
            return Results.Json(RecalibrationView.From(model, outcomes), BaselineAdminJsonContext.Relaxed.RecalibrationView);
        }));

        return group;
    }

    /// <summary>Runs an operation; a refusal becomes its status and <c>{"error": message}</c>, and nothing was changed.</summary>
    private static async Task<IResult> Answer(Func<Task<IResult>> operation)
    {
        try
        {
            return await operation().ConfigureAwait(false);
        }
        catch (BaselineRequestException ex)
        {
            return Error(ex.Refusal switch
            {
                BaselineRefusal.Invalid => StatusCodes.Status400BadRequest,
                BaselineRefusal.NotFound => StatusCodes.Status404NotFound,
                BaselineRefusal.Conflict => StatusCodes.Status409Conflict,
                BaselineRefusal.PreconditionFailed => StatusCodes.Status412PreconditionFailed,
                _ => StatusCodes.Status503ServiceUnavailable,
            }, ex.Message);
        }
        catch (OnboardingException ex)
        {
            return Error(StatusCodes.Status400BadRequest, ex.Message);
        }
    }

    /// <summary>The stored baseline as its JSON document, with its revision as the entity tag (for <c>If-Match</c>).</summary>
    private static IResult Baseline(HttpContext http, LineBaseline baseline)
    {
        http.Response.Headers.ETag = ETag(baseline.Revision);
        return Results.Text(baseline.ToJson(), OnboardingData.JsonMediaType, Encoding.UTF8);
    }

    private static IResult Error(int status, string message) =>
        Results.Json(new ErrorBody(message), BaselineAdminJsonContext.Relaxed.ErrorBody, statusCode: status);

    private static IReadOnlyList<double[]> Rows(string mediaType, ReadOnlyMemory<byte> body, OnboardingTarget target)
    {
        if (mediaType == OnboardingData.JsonMediaType)
        {
            return OnboardingData.ReadJson(body.Span, target.Channels, target.MaxRows);
        }

        using var reader = new StreamReader(new MemoryStream(body.ToArray(), writable: false), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return OnboardingData.ReadCsv(reader, target.Channels, target.MaxRows);
    }

    /// <summary>The body, read whole up to <paramref name="limit"/> bytes; larger is refused with 413 before it is all read.</summary>
    private static async Task<(ReadOnlyMemory<byte> Body, IResult? TooLarge)> ReadBodyAsync(HttpContext http, long limit)
    {
        IResult TooLarge() => Error(StatusCodes.Status413PayloadTooLarge,
            $"body: expected at most {limit.ToString(CultureInfo.InvariantCulture)} bytes (SparseInference:Baselines:MaxOnboardingBodyBytes), actual more.");
        if (http.Request.ContentLength > limit)
        {
            return (default, TooLarge());
        }

        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = limit + 1;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await http.Request.Body.ReadAsync(chunk, http.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                return (default, TooLarge());
            }

            buffer.Write(chunk, 0, read);
        }

        return (buffer.GetBuffer().AsMemory(0, (int)buffer.Length), null);
    }

    private static string? MediaType(HttpRequest request) =>
        MediaTypeHeaderValue.TryParse(request.ContentType, out var parsed) && parsed.MediaType.HasValue
            ? parsed.MediaType.Value!.ToLowerInvariant()
            : null;

    /// <summary>The revision an <c>If-Match</c> header names (<c>"3"</c>, as the ETag of GET), or null without one.</summary>
    private static long? IfMatch(HttpRequest request)
    {
        var header = request.Headers.IfMatch.ToString().Trim();
        if (header.Length == 0)
        {
            return null;
        }

        var value = header.StartsWith("W/", StringComparison.Ordinal) ? header[2..] : header;
        return long.TryParse(value.Trim('"'), NumberStyles.None, CultureInfo.InvariantCulture, out var revision)
            ? revision
            : throw new BaselineRequestException(BaselineRefusal.Invalid, $"If-Match: expected one revision as an entity tag such as \"3\" (the ETag of GET), actual '{header}'.");
    }

    private static string ETag(long revision) => new EntityTagHeaderValue($"\"{revision.ToString(CultureInfo.InvariantCulture)}\"").ToString();

    // Kestrel decodes the path except "%2F"; a client that encodes the line's '/' means one.
    private static string LineOf(string line) => line.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
}

/// <summary>The answer of <c>POST /admin/models/{model}/baselines:recalibrate</c>.</summary>
internal sealed record RecalibrationView(string Model, IReadOnlyList<RecalibratedLine> Recalibrated, IReadOnlyList<FailedLine> Failed)
{
    public static RecalibrationView From(string model, IReadOnlyList<RecalibrationOutcome> outcomes) => new(
        model,
        [.. outcomes.Where(o => o.Baseline is not null).Select(o => new RecalibratedLine(o.Line, o.Baseline!.Revision, o.Baseline.ModelVersion))],
        [.. outcomes.Where(o => o.Baseline is null).Select(o => new FailedLine(o.Line, o.Error ?? ""))]);
}

internal sealed record RecalibratedLine(string Line, long Revision, string ModelVersion);

internal sealed record FailedLine(string Line, string Error);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(List<BaselineSummary>))]
[JsonSerializable(typeof(RecalibrationView))]
[JsonSerializable(typeof(ErrorBody))]
internal sealed partial class BaselineAdminJsonContext : JsonSerializerContext
{
    /// <summary>Messages keep their quotes and symbols readable, as the other admin routes write them (responses are JSON, never HTML).</summary>
    public static BaselineAdminJsonContext Relaxed => s_relaxed ??= new(new JsonSerializerOptions(Default.Options) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    private static BaselineAdminJsonContext? s_relaxed;
}

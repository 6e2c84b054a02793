using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// A REST client that follows the client retry policy of docs/deploy.md: inference is idempotent, so an
/// attempt that fails on the connection (refused, reset, closed before the answer), with 502/503/504, or runs
/// past its own timeout is retried on a new connection, at most <see cref="MaxAttempts"/> attempts in all,
/// with exponential backoff and full jitter (100 ms doubling, capped at 2 s); 429 (queue full) is retried
/// after at least its <c>Retry-After</c>. Other statuses are final.
/// </summary>
public sealed class RetryingInferenceClient : IDisposable
{
    public const int MaxAttempts = 3;

    public static readonly TimeSpan InitialBackoff = TimeSpan.FromMilliseconds(100);

    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);

    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(5);

    private readonly Uri _baseAddress;

    // Connection: close on every request, so the proxy balances every attempt and a retry never reuses the
    // connection that failed.
    private readonly HttpClient _http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = AttemptTimeout };

    public RetryingInferenceClient(Uri baseAddress) => _baseAddress = baseAddress;

    /// <summary>Sends one inference request; returns its final outcome and how many attempts it took.</summary>
    public async Task<InferenceOutcome> InferAsync(string? lineId, int steps, int seed, CancellationToken cancellationToken)
    {
        var body = RequestBody(lineId, steps, seed);
        var failures = new List<string>();
        for (var attempt = 1; ; attempt++)
        {
            string failure;
            var wait = Backoff(attempt);
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_baseAddress, $"/v2/models/{ReplicaSet.Model}/infer"))
                {
                    Content = new StringContent(body, Encoding.UTF8, "application/json"),
                };
                request.Headers.ConnectionClose = true;
                using var response = await _http.SendAsync(request, cancellationToken);
                var text = await response.Content.ReadAsStringAsync(cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    var json = JsonNode.Parse(text)!;
                    var header = response.Headers.TryGetValues("X-SparseInference-Variant", out var values) ? values.Single() : null;
                    return new InferenceOutcome(true, attempt, header, (string?)json["parameters"]?["variant"], failures);
                }

                failure = $"HTTP {(int)response.StatusCode}: {text}";
                if (response.StatusCode == HttpStatusCode.TooManyRequests && response.Headers.RetryAfter?.Delta is { } retryAfter && retryAfter > wait)
                {
                    wait = retryAfter;
                }

                if (!IsRetryable(response.StatusCode))
                {
                    failures.Add(failure);
                    return new InferenceOutcome(false, attempt, null, null, failures);
                }
            }
            catch (HttpRequestException ex)
            {
                // Refused, reset, or the stream ended before the response.
                failure = $"{ex.HttpRequestError}: {ex.Message}";
            }
            catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                failure = $"attempt timeout {AttemptTimeout}: {ex.Message}";
            }

            failures.Add(failure);
            if (attempt == MaxAttempts)
            {
                return new InferenceOutcome(false, attempt, null, null, failures);
            }

            await Task.Delay(wait, cancellationToken);
        }
    }

    public void Dispose() => _http.Dispose();

    public static bool IsRetryable(HttpStatusCode status) =>
        status is HttpStatusCode.TooManyRequests or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    /// <summary>Full jitter: a uniform draw in [0, min(cap, initial · 2^(attempt-1))].</summary>
    public static TimeSpan Backoff(int attempt)
    {
        var ceiling = Math.Min(MaxBackoff.TotalMilliseconds, InitialBackoff.TotalMilliseconds * Math.Pow(2, attempt - 1));
        return TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling);
    }

    /// <summary>A KServe V2 JSON request for skab-pump: a [1, steps, 8] sensor window, optionally with a routing key.</summary>
    public static string RequestBody(string? lineId, int steps, int seed)
    {
        const int channels = 8;
        var data = new JsonArray();
        for (var i = 0; i < steps * channels; i++)
        {
            data.Add(MathF.Sin(0.01f * (seed + 1) * (i + 1)));
        }

        var request = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "input",
                ["shape"] = new JsonArray(1, steps, channels),
                ["datatype"] = "FP32",
                ["data"] = data,
            }),
        };
        if (lineId is not null)
        {
            request["parameters"] = new JsonObject { ["line_id"] = lineId };
        }

        return request.ToJsonString();
    }
}

/// <summary>A request's final outcome: success, attempts used, the variant named by header and by parameter, and each failed attempt.</summary>
public sealed record InferenceOutcome(bool Succeeded, int Attempts, string? VariantHeader, string? VariantParameter, IReadOnlyList<string> Failures);

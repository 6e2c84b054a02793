using System.Diagnostics;
using System.Text.Json;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol;

namespace SparseInference.Server.FunctionalTests.Observability;

/// <summary>The request log line and the span tree of real requests that carried a <c>traceparent</c> header.</summary>
[Collection(ObservabilityCollection.Name)]
public sealed class RequestLogAndTraceTests(ObservabilityFixture server)
{
    [Fact]
    public async Task RequestLog_TracedRestInfer_WritesOneJsonLineWithEveryField()
    {
        var traffic = await server.EnsureTrafficAsync();
        foreach (var (variant, traceId) in traffic.TraceIds)
        {
            var lines = RequestLines().Where(p => p.GetProperty("TraceId").GetString() == traceId).ToList();
            var line = Assert.Single(lines);
            Assert.Equal(traceId, line.GetProperty("@tr").GetString());
            Assert.Equal("Information", line.TryGetProperty("@l", out var level) ? level.GetString() : "Information");
            Assert.Equal("rest", line.GetProperty("Listener").GetString());
            Assert.Equal("POST", line.GetProperty("RequestMethod").GetString());
            Assert.Equal($"/v2/models/{ServerFixture.ModelName}/infer", line.GetProperty("RequestPath").GetString());
            Assert.Equal(200, line.GetProperty("StatusCode").GetInt32());
            Assert.True(line.GetProperty("Elapsed").GetDouble() > 0, "Elapsed: expected the request's duration in ms");
            Assert.Contains($"{ServerFixture.ModelName} v1 variant {variant}", line.GetProperty("@m").GetString());
            Assert.Equal(ServerFixture.ModelName, line.GetProperty("Model").GetString());
            Assert.Equal("1", line.GetProperty("Version").GetString());
            Assert.Equal(variant, line.GetProperty("Variant").GetString());
            Assert.Equal(1, line.GetProperty("BatchSize").GetInt32());
            Assert.Equal("rest", line.GetProperty("Protocol").GetString());
            Assert.Equal("success", line.GetProperty("Status").GetString());
            Assert.True(line.GetProperty("QueueMicroseconds").GetInt64() >= 0);
            Assert.True(line.GetProperty("ComputeMicroseconds").GetInt64() > 0, "compute µs: expected > 0 for a real forward");
        }

        Assert.Equal(ObservabilityFixture.Variants.Order(), traffic.TraceIds.Keys.Order());
    }

    [Fact]
    public async Task RequestLog_KnownTraffic_OneLinePerInferenceByStatusAndProtocol()
    {
        await server.EnsureTrafficAsync();
        var lines = RequestLines().Where(p => p.GetProperty("Model").GetString() == ServerFixture.ModelName).ToList();
        var variants = ObservabilityFixture.Variants.Count;
        Assert.Equal(ObservabilityFixture.RestOk * variants, lines.Count(p => Is(p, "rest", "success")));
        Assert.Equal(ObservabilityFixture.RestInvalid * variants, lines.Count(p => Is(p, "rest", "invalid")));
        Assert.Equal(ObservabilityFixture.GrpcOk * variants, lines.Count(p => Is(p, "grpc", "success")));
    }

    [Fact]
    public async Task Trace_TracedRestInfer_SpanTreeReceiveQueueBatchComputeRespondWithTags()
    {
        var traffic = await server.EnsureTrafficAsync();
        foreach (var (variant, traceId) in traffic.TraceIds)
        {
            var spans = server.Spans.Where(s => s.TraceId.ToHexString() == traceId).ToList();
            var receive = Assert.Single(spans, s => s.OperationName == "receive");
            // The parent is the transport's request activity, itself continuing the caller's trace.
            Assert.NotEqual(default, receive.ParentSpanId);
            Assert.Equal(ActivityKind.Server, receive.Kind);
            var queue = Assert.Single(spans, s => s.OperationName == "queue");
            var batch = Assert.Single(spans, s => s.OperationName == "batch");
            var compute = Assert.Single(spans, s => s.OperationName == "compute");
            var respond = Assert.Single(spans, s => s.OperationName == "respond");
            Assert.Equal(5, spans.Count);
            Assert.Equal(receive.SpanId, queue.ParentSpanId);
            Assert.Equal(receive.SpanId, batch.ParentSpanId);
            Assert.Equal(receive.SpanId, respond.ParentSpanId);
            Assert.Equal(batch.SpanId, compute.ParentSpanId);
            foreach (var span in spans)
            {
                Assert.Equal(ServerFixture.ModelName, span.GetTagItem(InferenceTracing.ModelTag));
                Assert.Equal(variant, span.GetTagItem(InferenceTracing.VariantTag));
                Assert.Equal(1, span.GetTagItem(InferenceTracing.BatchSizeTag));
            }

            Assert.Equal("success", receive.GetTagItem(InferenceTracing.OutcomeTag));
            Assert.True(compute.StartTimeUtc >= batch.StartTimeUtc && compute.StartTimeUtc + compute.Duration <= batch.StartTimeUtc + batch.Duration + TimeSpan.FromMilliseconds(1),
                "compute: expected inside its batch span");
            Assert.True(receive.Duration >= compute.Duration, "receive: expected to last at least as long as compute");
        }
    }

    /// <summary>Request lines of inferences: the request log's lines carrying the OIP fields.</summary>
    private IEnumerable<JsonElement> RequestLines() => AllLines().Where(p =>
        p.TryGetProperty("SourceContext", out var source) && source.GetString() == "Serilog.AspNetCore.RequestLoggingMiddleware" && p.TryGetProperty("Model", out _));

    private IEnumerable<JsonElement> AllLines()
    {
        foreach (var line in server.JsonLogLines())
        {
            using var document = JsonDocument.Parse(line);
            yield return document.RootElement.Clone();
        }
    }

    private static bool Is(JsonElement line, string protocol, string status) =>
        line.GetProperty("Protocol").GetString() == protocol && line.GetProperty("Status").GetString() == status;
}

using Microsoft.Extensions.Options;
using SparseInference.Models;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Guardrails;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Variants;

/// <summary>
/// What the request path calls: <see cref="Route"/> before the forward, then <see cref="ReportCompleted"/>
/// or <see cref="ReportFailed"/> after it. Reporting feeds the guardrails and hands the shadow half (if any)
/// to the background dispatcher; it never blocks.
/// </summary>
public sealed class VariantRouter(
    VariantCatalog catalog,
    ShadowDispatcher shadows,
    GuardrailMonitor guardrails,
    VariantMetrics metrics,
    IOptions<VariantOptions> options)
{
    /// <summary>Routing context of a REST request: key from the configured parameter, else the configured header.</summary>
    public RoutingContext ContextFor<TValue>(IReadOnlyDictionary<string, TValue>? parameters, Func<string, string?>? headerLookup) =>
        RoutingContext.FromRequest(parameters, headerLookup, options.Value.RoutingKeyParameter, options.Value.RoutingKeyHeader);

    /// <summary>Routing context of a gRPC request: key from the configured parameter, else the configured metadata entry.</summary>
    public RoutingContext ContextForGrpc(IEnumerable<KeyValuePair<string, InferParameter>>? parameters, Func<string, string?>? metadataLookup) =>
        RoutingContext.FromGrpcRequest(parameters, metadataLookup, options.Value.RoutingKeyParameter, options.Value.RoutingKeyHeader);

    /// <summary>Routes one request of <paramref name="model"/>; throws <see cref="VariantRoutingException"/> (a 400) for an unknown model or variant.</summary>
    public RouteDecision Route(string model, RoutingContext context)
    {
        if (!catalog.TryGet(model, out var registry))
        {
            throw new VariantRoutingException($"model: expected one of [{string.Join(", ", catalog.Models)}], actual '{model}'");
        }

        return registry.Route(context);
    }

    /// <summary>The primary answered. <paramref name="input"/> goes to the shadow queue when mirrored: do not reuse it.</summary>
    public void ReportCompleted(RouteDecision decision, ForwardInput input, ForwardResult result, TimeSpan elapsed)
    {
        guardrails.RecordRequest(decision.Model, decision.Primary.Name, elapsed, failed: false);
        metrics.RecordServed(decision.Model, decision.Primary.Name, elapsed, result.Density);
        if (decision.Shadow is not null)
        {
            shadows.TryEnqueue(decision, input, result);
        }
    }

    /// <summary>The primary failed (server-side error, not a client's bad input).</summary>
    public void ReportFailed(RouteDecision decision, TimeSpan elapsed)
    {
        guardrails.RecordRequest(decision.Model, decision.Primary.Name, elapsed, failed: true);
        metrics.RecordFailed(decision.Model, decision.Primary.Name);
    }
}

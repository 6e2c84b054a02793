using System.Globalization;
using System.Text.Json;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Serving.Variants.Routing;

/// <summary>What routing needs from a request: the sticky key (if any) and an explicit variant (if any).</summary>
public sealed record RoutingContext(string? Key = null, string? RequestedVariant = null)
{
    public static readonly RoutingContext Empty = new();

    /// <summary>
    /// Builds the context from the request's parameters and headers: the key comes from
    /// <paramref name="keyParameter"/> (e.g. line_id), else from <paramref name="keyHeader"/>; the explicit
    /// variant from the "variant" parameter. Parameter values may be strings, numbers, JSON elements or any
    /// value whose ToString is its text (such as the protocol layer's parameter type).
    /// </summary>
    public static RoutingContext FromRequest<TValue>(
        IReadOnlyDictionary<string, TValue>? parameters,
        Func<string, string?>? headerLookup,
        string keyParameter,
        string keyHeader)
    {
        string? key = null;
        string? requested = null;
        if (parameters is not null)
        {
            if (parameters.TryGetValue(keyParameter, out var k))
            {
                key = AsString(k);
            }

            if (parameters.TryGetValue(VariantParameter, out var v))
            {
                requested = AsString(v);
            }
        }

        if (string.IsNullOrEmpty(key) && headerLookup is not null)
        {
            key = headerLookup(keyHeader);
        }

        return new RoutingContext(string.IsNullOrEmpty(key) ? null : key, string.IsNullOrEmpty(requested) ? null : requested);
    }

    /// <summary>The same for a gRPC request: Open Inference Protocol parameters and request metadata.</summary>
    public static RoutingContext FromGrpcRequest(
        IEnumerable<KeyValuePair<string, InferParameter>>? parameters,
        Func<string, string?>? metadataLookup,
        string keyParameter,
        string keyHeader)
    {
        Dictionary<string, object?>? values = null;
        if (parameters is not null)
        {
            values = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (name, parameter) in parameters)
            {
                values[name] = parameter.ParameterChoiceCase switch
                {
                    InferParameter.ParameterChoiceOneofCase.StringParam => parameter.StringParam,
                    InferParameter.ParameterChoiceOneofCase.Int64Param => parameter.Int64Param,
                    InferParameter.ParameterChoiceOneofCase.Uint64Param => parameter.Uint64Param,
                    InferParameter.ParameterChoiceOneofCase.DoubleParam => parameter.DoubleParam,
                    InferParameter.ParameterChoiceOneofCase.BoolParam => parameter.BoolParam ? "true" : "false",
                    _ => null,
                };
            }
        }

        // gRPC metadata keys are lower case.
        return FromRequest<object?>(values, metadataLookup is null ? null : h => metadataLookup(h.ToLowerInvariant()), keyParameter, keyHeader);
    }

    /// <summary>The request parameter that pins a variant explicitly.</summary>
    public const string VariantParameter = "variant";

    private static string? AsString(object? value) => value switch
    {
        null => null,
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } e => e.GetString(),
        JsonElement { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined } => null,
        JsonElement e => e.GetRawText(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };
}

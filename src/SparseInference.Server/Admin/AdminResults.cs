using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Rollout;
using SparseInference.Serving;

namespace SparseInference.Server.Admin;

internal static class AdminResults
{
    public static IResult Error(int status, string message) =>
        Results.Json(new ErrorBody(message), AdminJsonContext.Relaxed.ErrorBody, statusCode: status);

    public static IResult Table(RoutingTable table, int status = StatusCodes.Status200OK) =>
        Results.Json(ToView(table), AdminJsonContext.Relaxed.TableView, statusCode: status);

    public static IResult FromChange(VariantChangeResult result) => result.Status switch
    {
        VariantChangeStatus.Applied => Table(result.Table),
        VariantChangeStatus.Created => Table(result.Table, StatusCodes.Status201Created),
        VariantChangeStatus.Conflict => Error(StatusCodes.Status409Conflict, result.Error ?? "conflict"),
        VariantChangeStatus.NotFound => Error(StatusCodes.Status404NotFound, result.Error ?? "not found"),
        VariantChangeStatus.Invalid => Error(StatusCodes.Status400BadRequest, result.Error ?? "invalid"),
        VariantChangeStatus.BuildFailed => Error(StatusCodes.Status422UnprocessableEntity, result.Error ?? "build failed"),
        VariantChangeStatus.Unavailable => Error(StatusCodes.Status503ServiceUnavailable, result.Error ?? "state store unavailable"),
        _ => Error(StatusCodes.Status500InternalServerError, $"unexpected change status {result.Status}"),
    };

    public static TableView ToView(RoutingTable table)
    {
        var variants = table.Variants.Values
            .OrderBy(v => v.Name, StringComparer.Ordinal)
            .Select(v => new VariantView(
                v.Name, v.Spec.Pattern, v.Spec.Sparsity, v.Spec.BlockSize, v.Spec.GlobalBlocks, v.Spec.Seed,
                v.Definition.WeightsDirectory, v.Generation, table.Split.WeightOf(v.Name), table.Shadow?.Name == v.Name))
            .ToArray();
        var weights = table.Split.Weights.ToDictionary(w => w.Variant, w => w.Weight, StringComparer.Ordinal);
        var shadow = table.Split.Shadow is { } s ? new ShadowView(s.Variant, s.Percent, s.FlagThreshold) : null;
        return new TableView(table.Model, table.Version, variants, new SplitView(weights, shadow, table.Experiment), !table.History.IsEmpty);
    }

    public static RolloutView ToRolloutView(VariantRegistry registry)
    {
        var status = registry.Status;
        var table = registry.Current;
        return new RolloutView(
            registry.Model, RolloutReplica.Name, registry.StoreLocation, status.DesiredRevision, table.Version, status.Converged, status.LastError, status.CheckedAt,
            RolloutDocument.From(registry.Model, table.Rollout));
    }

    /// <summary>Reads a JSON body with a message naming what was wrong; null body or bad JSON yields an error result.</summary>
    public static async Task<(T? Body, IResult? Error)> ReadBodyAsync<T>(HttpRequest request, JsonTypeInfo<T> typeInfo, string expected)
        where T : class
    {
        try
        {
            var body = await JsonSerializer.DeserializeAsync(request.Body, typeInfo, request.HttpContext.RequestAborted).ConfigureAwait(false);
            return body is null
                ? (null, Error(StatusCodes.Status400BadRequest, $"body: expected {expected}, actual null"))
                : (body, null);
        }
        catch (JsonException ex)
        {
            return (null, Error(StatusCodes.Status400BadRequest, $"body: expected {expected}, actual invalid JSON ({ex.Message})"));
        }
    }
}

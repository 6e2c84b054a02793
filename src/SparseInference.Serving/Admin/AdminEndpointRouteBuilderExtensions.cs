using System.Collections.Immutable;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Comparison;

namespace SparseInference.Serving.Admin;

public static class AdminEndpointRouteBuilderExtensions
{
    /// <summary>Keyword of <see cref="VariantBody.Weights"/> meaning "the model's loaded default weights".</summary>
    public const string DefaultWeights = "default";

    private const string VariantShape = "{\"pattern\": string, \"sparsity\": number in [0,1), \"blockSize\"?, \"globalBlocks\"?, \"seed\"?, \"weights\"?: directory or \"default\"}";
    private const string SplitShape = "{\"weights\": {variant: number}, \"shadow\"?: {\"variant\": string, \"percent\": 0..100, \"flagThreshold\"?: number}, \"experiment\"?: string}";

    /// <summary>
    /// Maps the admin API under /admin. Every route requires the admin bearer token and answers only on the
    /// admin port (<see cref="AdminOptions.Port"/>, 8003 by default); the host listens on that port too.
    /// </summary>
    public static RouteGroupBuilder MapSparseInferenceAdmin(this IEndpointRouteBuilder endpoints)
    {
        var admin = endpoints.MapGroup("/admin");
        admin.AddEndpointFilter(AdminAuthorization.FilterAsync);

        admin.MapGet("/models", (VariantCatalog catalog) =>
            Results.Json(new ModelsView(catalog.Models.ToArray()), AdminJsonContext.Relaxed.ModelsView));

        admin.MapGet("/models/{model}/variants", (string model, VariantCatalog catalog) =>
            WithRegistry(catalog, model, registry => Task.FromResult(AdminResults.Table(registry.Current))));

        admin.MapPut("/models/{model}/variants/{variant}", (string model, string variant, HttpRequest request, VariantCatalog catalog) =>
            WithRegistry(catalog, model, async registry =>
            {
                var (body, error) = await AdminResults.ReadBodyAsync(request, AdminJsonContext.Relaxed.VariantBody, VariantShape).ConfigureAwait(false);
                if (error is not null)
                {
                    return error;
                }

                registry.Current.Variants.TryGetValue(variant, out var existing);
                var current = existing?.Definition;
                if (current is null && body!.Pattern is null)
                {
                    return AdminResults.Error(StatusCodes.Status400BadRequest, $"pattern: expected one of [{string.Join(", ", Models.AttentionSpec.KnownPatterns)}] when creating variant '{variant}', actual none");
                }

                var weights = body!.Weights switch
                {
                    null => current?.WeightsDirectory,
                    DefaultWeights => null,
                    var dir => dir,
                };
                var definition = new VariantDefinition(
                    variant,
                    body.Pattern ?? current!.Pattern,
                    body.Sparsity ?? current?.Sparsity ?? 0.0,
                    body.BlockSize ?? current?.BlockSize ?? 16,
                    body.GlobalBlocks ?? current?.GlobalBlocks ?? 1,
                    body.Seed ?? current?.Seed ?? 0,
                    weights);
                return AdminResults.FromChange(await registry.UpsertVariantAsync(definition, request.HttpContext.RequestAborted).ConfigureAwait(false));
            }));

        admin.MapDelete("/models/{model}/variants/{variant}", (string model, string variant, VariantCatalog catalog) =>
            WithRegistry(catalog, model, async registry => AdminResults.FromChange(await registry.DeleteVariantAsync(variant).ConfigureAwait(false))));

        admin.MapPut("/models/{model}/split", (string model, HttpRequest request, VariantCatalog catalog) =>
            WithRegistry(catalog, model, async registry =>
            {
                var (body, error) = await AdminResults.ReadBodyAsync(request, AdminJsonContext.Relaxed.SplitBody, SplitShape).ConfigureAwait(false);
                if (error is not null)
                {
                    return error;
                }

                if (body!.Weights is null)
                {
                    return AdminResults.Error(StatusCodes.Status400BadRequest, $"weights: expected {{variant: number}}, actual none");
                }

                ShadowConfig? shadow = null;
                if (body.Shadow is { } s)
                {
                    if (s.Variant is null || s.Percent is null)
                    {
                        return AdminResults.Error(StatusCodes.Status400BadRequest, $"shadow: expected {{\"variant\", \"percent\"}}, actual variant={s.Variant ?? "none"}, percent={s.Percent?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}");
                    }

                    shadow = new ShadowConfig(s.Variant, s.Percent.Value, s.FlagThreshold);
                }

                var split = new SplitConfig(body.Weights.Select(kv => new SplitWeight(kv.Key, kv.Value)).ToImmutableArray(), shadow, body.Experiment ?? registry.Current.Split.Experiment);
                return AdminResults.FromChange(await registry.SetSplitAsync(split).ConfigureAwait(false));
            }));

        admin.MapPost("/models/{model}/promote/{variant}", (string model, string variant, VariantCatalog catalog) =>
            WithRegistry(catalog, model, async registry => AdminResults.FromChange(await registry.PromoteAsync(variant).ConfigureAwait(false))));

        admin.MapPost("/models/{model}/rollback", (string model, VariantCatalog catalog) =>
            WithRegistry(catalog, model, async registry => AdminResults.FromChange(await registry.RollbackAsync("admin request").ConfigureAwait(false))));

        admin.MapGet("/models/{model}/comparison", (string model, VariantCatalog catalog, ComparisonStore store) =>
            WithRegistry(catalog, model, registry => Task.FromResult(Results.Json(
                new ComparisonView(model, registry.Current.Version, store.Snapshot(model)),
                AdminJsonContext.Relaxed.ComparisonView))));

        return admin;
    }

    private static Task<IResult> WithRegistry(VariantCatalog catalog, string model, Func<VariantRegistry, Task<IResult>> action) =>
        catalog.TryGet(model, out var registry)
            ? action(registry)
            : Task.FromResult(AdminResults.Error(StatusCodes.Status404NotFound, $"model: expected one of [{string.Join(", ", catalog.Models)}], actual '{model}'"));
}

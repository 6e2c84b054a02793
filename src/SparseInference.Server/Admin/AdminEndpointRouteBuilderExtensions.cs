using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Guardrails;
using SparseInference.Serving;

namespace SparseInference.Server.Admin;

public static class AdminEndpointRouteBuilderExtensions
{
    /// <summary>Keyword of <see cref="VariantBody.Weights"/> meaning "the model's loaded default weights".</summary>
    public const string DefaultWeights = "default";

    private const string VariantShape = "{\"pattern\": string, \"sparsity\": number in [0,1), \"blockSize\"?, \"globalBlocks\"?, \"seed\"?, \"weights\"?: directory or \"default\"}";
    private const string GuardrailShape = "{\"enabled\"?: bool, \"window\"?: \"hh:mm:ss\", \"minSamples\"?, \"maxErrorRate\"?, \"maxP99LatencyMs\"?, \"maxMeanAbsoluteError\"?, \"minFlagAgreement\"?}";
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
                    return AdminResults.Error(StatusCodes.Status400BadRequest, $"pattern: expected one of [{string.Join(", ", SparseInference.Models.AttentionSpec.KnownPatterns)}] when creating variant '{variant}', actual none");
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
                var (body, error) = await AdminResults.ReadBodyAsync(request, AdminJsonContext.Relaxed.SplitDocument, SplitShape).ConfigureAwait(false);
                if (error is not null)
                {
                    return error;
                }

                var errors = new List<string>();
                if (body!.ToSplitConfig("", errors, registry.Current.Split.Experiment) is not { } split)
                {
                    return AdminResults.Error(StatusCodes.Status400BadRequest, string.Join("; ", errors));
                }

                return AdminResults.FromChange(await registry.SetSplitAsync(split, request.HttpContext.RequestAborted).ConfigureAwait(false));
            }));

        admin.MapPost("/models/{model}/promote/{variant}", (string model, string variant, VariantCatalog catalog) =>
            WithRegistry(catalog, model, async registry => AdminResults.FromChange(await registry.PromoteAsync(variant).ConfigureAwait(false))));

        admin.MapPost("/models/{model}/rollback", (string model, VariantCatalog catalog) =>
            WithRegistry(catalog, model, async registry => AdminResults.FromChange(await registry.RollbackAsync("admin request").ConfigureAwait(false))));

        admin.MapGet("/models/{model}/rollout", (string model, VariantCatalog catalog) =>
            WithRegistry(catalog, model, registry => Task.FromResult(Results.Json(AdminResults.ToRolloutView(registry), AdminJsonContext.Relaxed.RolloutView))));

        admin.MapPut("/models/{model}/guardrails", (string model, HttpRequest request, VariantCatalog catalog, GuardrailMonitor guardrails) =>
            WithRegistry(catalog, model, async registry =>
            {
                var (body, error) = await AdminResults.ReadBodyAsync(request, AdminJsonContext.Relaxed.GuardrailDocument, GuardrailShape).ConfigureAwait(false);
                if (error is not null)
                {
                    return error;
                }

                // Omitted fields take the bounds that hold now, so the document then carries all of them to every replica.
                var settings = body!.ToSettings(guardrails.BoundsFor(model));
                return AdminResults.FromChange(await registry.SetGuardrailsAsync(settings, request.HttpContext.RequestAborted).ConfigureAwait(false));
            }));

        admin.MapDelete("/models/{model}/guardrails", (string model, HttpRequest request, VariantCatalog catalog) =>
            WithRegistry(catalog, model, async registry => AdminResults.FromChange(await registry.SetGuardrailsAsync(null, request.HttpContext.RequestAborted).ConfigureAwait(false))));

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

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SparseInference.Server.Rest;
using SparseInference.Serving;

namespace SparseInference.Server.Admin;

public static class ModelControlEndpoints
{
    /// <summary>
    /// Maps Triton's model repository extension (<c>POST /v2/repository/index</c>, <c>/models/{m}/load</c> with an optional
    /// serving.json override, <c>/models/{m}/unload</c>) behind the admin bearer token, for the admin port: loading and
    /// unloading change what every client is served, so they need the operator's credential (as TorchServe moved its
    /// management API). The inference port keeps the read-only index.
    /// </summary>
    public static RouteGroupBuilder MapSparseInferenceModelControl(this IEndpointRouteBuilder endpoints)
    {
        var repository = endpoints.MapGroup("/v2/repository");
        repository.MapPost("/index", Authorized(RestEndpoints.RepositoryIndex));
        repository.MapPost("/models/{model}/load", Authorized(RestEndpoints.RepositoryLoad));
        repository.MapPost("/models/{model}/unload", Authorized(RestEndpoints.RepositoryUnload));
        return repository;
    }

    private static RequestDelegate Authorized(RequestDelegate handler) => context =>
        AdminAuthorization.Refusal(context) is { } refusal ? refusal.ExecuteAsync(context) : handler(context);
}

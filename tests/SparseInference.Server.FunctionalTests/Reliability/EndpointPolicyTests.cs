using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Server.Hosting;
using SparseInference.Serving.Hosting;
using Grpc.AspNetCore.Server;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// Every HTTP endpoint and every gRPC method the server maps has an access policy here. Adding an endpoint without
/// adding it to these tables fails the build's tests, so exposure is always a reviewed decision.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class EndpointPolicyTests(ServerFixture server)
{
    private enum Listener { Rest, Grpc, Metrics, Admin }

    /// <summary>"METHODS pattern" → the ports it answers on. Inference API keys, when configured, cover Rest and Grpc except health.</summary>
    private static readonly Dictionary<string, Listener[]> HttpPolicy = new(StringComparer.Ordinal)
    {
        ["GET /v2/health/live"] = [Listener.Rest],
        ["GET /v2/health/ready"] = [Listener.Rest],
        ["GET /v2"] = [Listener.Rest],
        ["GET /v2/models/stats"] = [Listener.Rest],
        ["GET /v2/models/{model}"] = [Listener.Rest],
        ["GET /v2/models/{model}/ready"] = [Listener.Rest],
        ["POST /v2/models/{model}/infer"] = [Listener.Rest],
        ["GET /v2/models/{model}/stats"] = [Listener.Rest],
        ["GET /v2/models/{model}/versions/{version}"] = [Listener.Rest],
        ["GET /v2/models/{model}/versions/{version}/ready"] = [Listener.Rest],
        ["POST /v2/models/{model}/versions/{version}/infer"] = [Listener.Rest],
        ["GET /v2/models/{model}/versions/{version}/stats"] = [Listener.Rest],
        // The OIP repository extension: the index is read-only and stays on the inference port; load and unload change
        // what every client is served, so they work only on the admin port with the admin token (the inference port
        // answers 403 naming where they are). Model names and override paths cannot leave the repository root.
        ["POST /v2/repository/index"] = [Listener.Rest, Listener.Admin],
        ["POST /v2/repository/models/{model}/load"] = [Listener.Rest, Listener.Admin],
        ["POST /v2/repository/models/{model}/unload"] = [Listener.Rest, Listener.Admin],
        // grpc-dotnet's answers to unknown services and methods: UNIMPLEMENTED.
        ["* {unimplementedService}/{unimplementedMethod:grpcunimplemented}"] = [Listener.Grpc],
        ["* inference.GRPCInferenceService/{unimplementedMethod:grpcunimplemented}"] = [Listener.Grpc],
        ["* grpc.health.v1.Health/{unimplementedMethod:grpcunimplemented}"] = [Listener.Grpc],
        ["* grpc.reflection.v1alpha.ServerReflection/{unimplementedMethod:grpcunimplemented}"] = [Listener.Grpc],
        ["* grpc.reflection.v1.ServerReflection/{unimplementedMethod:grpcunimplemented}"] = [Listener.Grpc],
        ["* /metrics"] = [Listener.Metrics],
        // The variants admin API: admin port only, and the admin bearer token (SparseInference:Admin:Token) when set.
        ["GET /admin/models"] = [Listener.Admin],
        ["GET /admin/models/{model}/variants"] = [Listener.Admin],
        ["PUT /admin/models/{model}/variants/{variant}"] = [Listener.Admin],
        ["DELETE /admin/models/{model}/variants/{variant}"] = [Listener.Admin],
        ["PUT /admin/models/{model}/split"] = [Listener.Admin],
        ["POST /admin/models/{model}/promote/{variant}"] = [Listener.Admin],
        ["POST /admin/models/{model}/rollback"] = [Listener.Admin],
        ["GET /admin/models/{model}/comparison"] = [Listener.Admin],
        ["GET /admin/models/{model}/rollout"] = [Listener.Admin],
        ["PUT /admin/models/{model}/guardrails"] = [Listener.Admin],
        ["DELETE /admin/models/{model}/guardrails"] = [Listener.Admin],
        // Line baselines (docs/baselines.md): admin port only, behind the admin token; the line is the rest of the path.
        ["GET /admin/models/{model}/baselines"] = [Listener.Admin],
        ["GET /admin/models/{model}/baselines/{**line}"] = [Listener.Admin],
        ["PUT /admin/models/{model}/baselines/{**line}"] = [Listener.Admin],
        ["DELETE /admin/models/{model}/baselines/{**line}"] = [Listener.Admin],
        ["POST /admin/models/{model}/baselines:recalibrate"] = [Listener.Admin],
    };

    /// <summary>
    /// gRPC methods served; each is on the gRPC port only, behind API keys when configured (except ServerLive, ServerReady and
    /// grpc.health.v1, which probes call).
    /// </summary>
    private static readonly HashSet<string> GrpcAllowList = new(StringComparer.Ordinal)
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/inference.GRPCInferenceService/ServerLive",
        "/inference.GRPCInferenceService/ServerReady",
        "/inference.GRPCInferenceService/ModelReady",
        "/inference.GRPCInferenceService/ServerMetadata",
        "/inference.GRPCInferenceService/ModelMetadata",
        "/inference.GRPCInferenceService/ModelInfer",
        "/inference.GRPCInferenceService/ModelStreamInfer",
        "/inference.GRPCInferenceService/RepositoryIndex",
        "/inference.GRPCInferenceService/RepositoryModelLoad",
        "/inference.GRPCInferenceService/RepositoryModelUnload",
    };

    [Fact]
    public void HttpEndpoints_Every_HasAPolicyEntryAndItsPortRestriction()
    {
        var ports = new Dictionary<Listener, int>
        {
            [Listener.Rest] = server.RestPort, [Listener.Grpc] = server.GrpcPort, [Listener.Metrics] = server.MetricsPort, [Listener.Admin] = server.AdminPort,
        };
        var endpoints = server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        Assert.NotEmpty(endpoints);

        var seen = new List<string>();
        foreach (var endpoint in endpoints.Where(e => e.Metadata.GetMetadata<GrpcMethodMetadata>() is null))
        {
            var methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods is { Count: > 0 } m ? string.Join(",", m.Order()) : "*";
            var key = $"{methods} {endpoint.RoutePattern.RawText?.TrimEnd('/')}";
            seen.Add(key);
            Assert.True(HttpPolicy.TryGetValue(key, out var listeners), $"endpoint '{key}' has no access policy entry; add it to {nameof(HttpPolicy)} with its port");
            var restriction = endpoint.Metadata.GetMetadata<LocalPortMetadata>();
            Assert.True(restriction is not null, $"endpoint '{key}' answers on every port; expected only {string.Join(" or ", listeners)}");
            Assert.Contains(restriction.Port, listeners.Select(l => ports[l]));
            seen.Add($"{key} on {listeners.Single(l => ports[l] == restriction.Port)}");
        }

        // Stale entries would hide a removed-then-readded endpoint's review; each listed port has its endpoint.
        Assert.Empty(HttpPolicy.Keys.Except(seen));
        Assert.Empty(HttpPolicy.SelectMany(p => p.Value.Select(l => $"{p.Key} on {l}")).Except(seen));
    }

    [Fact]
    public void GrpcMethods_Every_IsOnTheAllowListAndTheGrpcPortOnly()
    {
        var methods = server.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .Select(e => (Endpoint: e, Grpc: e.Metadata.GetMetadata<GrpcMethodMetadata>()))
            .Where(e => e.Grpc is not null)
            .ToList();
        var paths = methods.Select(m => m.Grpc!.Method.FullName).ToList();
        var unlisted = paths.Except(GrpcAllowList).ToList();
        Assert.True(unlisted.Count == 0, $"gRPC methods without an access policy entry: {string.Join(", ", unlisted)}");
        Assert.Empty(GrpcAllowList.Except(paths));
        Assert.All(methods, m => Assert.Equal(server.GrpcPort, m.Endpoint.Metadata.GetMetadata<LocalPortMetadata>()?.Port));
    }

    [Fact]
    public async Task RestEndpoints_OnTheMetricsPort_AreNotServed()
    {
        using var metrics = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.MetricsPort}") };
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await metrics.GetAsync($"/v2/models/{ServerFixture.ModelName}")).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await server.Rest.GetAsync("/metrics")).StatusCode);
    }
}

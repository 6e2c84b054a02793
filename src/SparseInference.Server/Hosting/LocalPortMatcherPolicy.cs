using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Matching;
using SparseInference.Serving;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Hosting;

/// <summary>Endpoint metadata: the endpoint answers only on connections accepted on this local port.</summary>
public sealed record LocalPortMetadata(int Port);

/// <summary>
/// Drops candidate endpoints whose <see cref="LocalPortMetadata"/> differs from the connection's local port. Unlike
/// host matching this ignores the Host header, so it holds behind port-mapping proxies too.
/// </summary>
internal sealed class LocalPortMatcherPolicy : MatcherPolicy, IEndpointSelectorPolicy
{
    public override int Order => 0;

    public bool AppliesToEndpoints(IReadOnlyList<Endpoint> endpoints) =>
        endpoints.Any(e => e.Metadata.GetMetadata<LocalPortMetadata>() is not null);

    public Task ApplyAsync(HttpContext httpContext, CandidateSet candidates)
    {
        var port = httpContext.Connection.LocalPort;
        for (var i = 0; i < candidates.Count; i++)
        {
            if (candidates[i].Endpoint.Metadata.GetMetadata<LocalPortMetadata>() is { } required && required.Port != port)
            {
                candidates.SetValidity(i, false);
            }
        }

        return Task.CompletedTask;
    }
}

public static class LocalPortEndpointConventionBuilderExtensions
{
    /// <summary>Serves the endpoints only on connections to <paramref name="port"/>.</summary>
    public static TBuilder RequireLocalPort<TBuilder>(this TBuilder builder, int port)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.WithMetadata(new LocalPortMetadata(port));
        return builder;
    }
}

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Serving;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Hosting;

/// <summary>
/// While the server drains for shutdown, every HTTP/1.1 response says <c>Connection: close</c>, so a client reusing a
/// keep-alive connection opens its next one to a replica that is staying (instead of writing into a socket that the
/// server is about to close, and seeing a reset). HTTP/2 connections get GOAWAY when Kestrel stops.
/// </summary>
internal sealed class DrainingConnections(ServerState state) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((context, following) =>
        {
            if (HttpProtocol.IsHttp11(context.Request.Protocol))
            {
                // Decided when the headers go out: a request that started before the drain may answer during it, and
                // handlers may clear the response's headers before then.
                context.Response.OnStarting(static s =>
                {
                    var (server, response) = ((ServerState, HttpResponse))s;
                    if (server.IsDraining)
                    {
                        response.Headers.Connection = "close";
                    }

                    return Task.CompletedTask;
                }, (state, context.Response));
            }

            return following(context);
        });
        next(app);
    };
}

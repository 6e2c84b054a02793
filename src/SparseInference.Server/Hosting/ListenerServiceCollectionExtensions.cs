using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Hosting;

public static class ListenerServiceCollectionExtensions
{
    /// <summary>
    /// Kestrel's four listeners from <see cref="SparseInferenceOptions.Ports"/> (HTTPS where <see cref="SparseInferenceOptions.Tls"/>
    /// names a certificate; the gRPC port speaks HTTP/2 alone), the REST body limit, the shutdown timeout, the local-port
    /// endpoint policy, and <c>Connection: close</c> while draining. Listener settings are validated at start.
    /// </summary>
    public static IServiceCollection AddSparseInferenceListeners(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SparseInferenceOptions>, ListenerOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartupFilter, DrainingConnections>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<MatcherPolicy, LocalPortMatcherPolicy>());

        services.AddOptions<HostOptions>().Configure<IOptions<SparseInferenceOptions>>((host, options) =>
            host.ShutdownTimeout = TimeSpan.FromSeconds(options.Value.Shutdown.TimeoutSeconds));

        services.AddOptions<KestrelServerOptions>().Configure<IOptions<SparseInferenceOptions>, IHostEnvironment>((kestrel, serving, environment) =>
        {
            var options = serving.Value;
            var root = environment.ContentRootPath;
            kestrel.Limits.MaxRequestBodySize = options.Limits.MaxRequestBodyBytes;
            TlsCertificates.Listen(kestrel, options.Ports.Rest, HttpProtocols.Http1, options.Tls.Rest, "Rest", root);
            // Cleartext HTTP/2 needs an endpoint that speaks HTTP/2 alone (no ALPN without TLS).
            TlsCertificates.Listen(kestrel, options.Ports.Grpc, HttpProtocols.Http2, options.Tls.Grpc, "Grpc", root);
            TlsCertificates.Listen(kestrel, options.Ports.Metrics, HttpProtocols.Http1, options.Tls.Metrics, "Metrics", root);
            TlsCertificates.Listen(kestrel, options.Ports.Admin, HttpProtocols.Http1, options.Tls.Admin, "Admin", root);
        });
        return services;
    }
}

using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace SparseInference.Serving.Hosting;

/// <summary>The <c>SparseInference:Inference</c> section: optional API keys for the REST and gRPC ports.</summary>
public sealed class InferenceAccessOptions
{
    public const string SectionName = "SparseInference:Inference";

    /// <summary>Accepted keys; empty (the default) leaves inference open, as before.</summary>
    public List<string> ApiKeys { get; set; } = [];
}

/// <summary>
/// When API keys are configured, every request on the REST and gRPC ports must carry one: REST as
/// <c>Authorization: Bearer &lt;key&gt;</c> or <c>X-API-Key</c>, gRPC as <c>authorization: Bearer &lt;key&gt;</c> metadata.
/// Health probes stay open so that orchestrators need no key. Runs before routing, so no endpoint can be missed.
/// </summary>
internal sealed class InferenceApiKeyMiddleware(RequestDelegate next, IOptions<InferenceAccessOptions> access, IOptions<SparseInferenceOptions> serving)
{
    private static readonly HashSet<string> OpenPaths = new(StringComparer.Ordinal)
    {
        "/v2/health/live", "/v2/health/ready",
        "/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady",
    };

    private readonly byte[][] _keys = [.. access.Value.ApiKeys.Where(k => k.Length > 0).Select(Encoding.UTF8.GetBytes)];

    public Task InvokeAsync(HttpContext context)
    {
        var ports = serving.Value.Ports;
        var port = context.Connection.LocalPort;
        if (_keys.Length == 0 || (port != ports.Rest && port != ports.Grpc) || OpenPaths.Contains(context.Request.Path.Value ?? ""))
        {
            return next(context);
        }

        if (Presented(context.Request.Headers) is { } key && Accepted(key))
        {
            return next(context);
        }

        const string message = "missing or unknown API key: expected 'Authorization: Bearer <key>' or 'X-API-Key: <key>'";
        if (port == ports.Grpc)
        {
            // Trailers-only response: gRPC status 16 UNAUTHENTICATED in the headers.
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/grpc";
            context.Response.Headers["grpc-status"] = "16";
            context.Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
            return Task.CompletedTask;
        }

        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer";
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync($$"""{"error":"{{message}}"}""");
    }

    private static string? Presented(IHeaderDictionary headers)
    {
        var authorization = headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization["Bearer ".Length..].Trim();
        }

        var apiKey = headers["X-API-Key"].ToString();
        return apiKey.Length > 0 ? apiKey : null;
    }

    private bool Accepted(string presented)
    {
        var bytes = Encoding.UTF8.GetBytes(presented);
        var accepted = false;
        foreach (var key in _keys)
        {
            // Constant-time per key, and every key is compared, so timing does not reveal which prefix matched.
            accepted |= bytes.Length == key.Length && CryptographicOperations.FixedTimeEquals(bytes, key);
        }

        return accepted;
    }
}

public static class InferenceApiKeyServiceCollectionExtensions
{
    /// <summary>Binds <see cref="InferenceAccessOptions"/> and puts the key check in front of the whole pipeline.</summary>
    public static IServiceCollection AddInferenceApiKeys(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<InferenceAccessOptions>().Bind(configuration.GetSection(InferenceAccessOptions.SectionName));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartupFilter, InferenceApiKeyStartupFilter>());
        return services;
    }

    private sealed class InferenceApiKeyStartupFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.UseMiddleware<InferenceApiKeyMiddleware>();
            next(app);
        };
    }
}

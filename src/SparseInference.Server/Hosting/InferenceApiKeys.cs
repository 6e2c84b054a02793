using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using SparseInference.Serving;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Hosting;

/// <summary>
/// The <c>SparseInference:Inference</c> section, a node of the <see cref="SparseInferenceOptions"/> tree: optional API keys
/// for the REST and gRPC ports.
/// </summary>
public sealed class InferenceAccessOptions
{
    public const string SectionName = SparseInferenceOptions.SectionName + ":Inference";

    /// <summary>Accepted keys; empty (the default) leaves inference open, as before.</summary>
    public List<string> ApiKeys { get; set; } = [];
}

/// <summary>
/// The accepted inference API keys. Presented as <c>Authorization: Bearer &lt;key&gt;</c> or <c>X-API-Key</c> (REST) and as
/// <c>authorization: Bearer &lt;key&gt;</c> metadata (gRPC, checked by the host's gRPC interceptor).
/// </summary>
public sealed class InferenceApiKeys(IOptions<InferenceAccessOptions> access)
{
    public const string MissingKeyMessage = "missing or unknown API key: expected 'Authorization: Bearer <key>' or 'X-API-Key: <key>'";

    private readonly byte[][] _keys = [.. access.Value.ApiKeys.Where(k => k.Length > 0).Select(Encoding.UTF8.GetBytes)];

    /// <summary>False when no key is configured: inference stays open.</summary>
    public bool Required => _keys.Length > 0;

    /// <summary>Whether the <c>Authorization</c> or <c>X-API-Key</c> value carries an accepted key.</summary>
    public bool Accepts(string? authorization, string? apiKey) => Presented(authorization, apiKey) is { } key && Accepted(key);

    private static string? Presented(string? authorization, string? apiKey)
    {
        if (authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization["Bearer ".Length..].Trim();
        }

        return string.IsNullOrEmpty(apiKey) ? null : apiKey;
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

/// <summary>
/// When API keys are configured, every request on the REST port must carry one. Health probes stay open so that
/// orchestrators need no key. Runs before routing, so no endpoint can be missed.
/// </summary>
internal sealed class InferenceApiKeyMiddleware(RequestDelegate next, InferenceApiKeys keys, IOptions<SparseInferenceOptions> serving)
{
    private static readonly HashSet<string> OpenPaths = new(StringComparer.Ordinal) { "/v2/health/live", "/v2/health/ready" };

    public Task InvokeAsync(HttpContext context)
    {
        if (!keys.Required || context.Connection.LocalPort != serving.Value.Ports.Rest || OpenPaths.Contains(context.Request.Path.Value ?? ""))
        {
            return next(context);
        }

        var headers = context.Request.Headers;
        if (keys.Accepts(headers.Authorization.ToString(), headers["X-API-Key"].ToString()))
        {
            return next(context);
        }

        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer";
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync($$"""{"error":"{{InferenceApiKeys.MissingKeyMessage}}"}""");
    }
}

public static class InferenceApiKeyServiceCollectionExtensions
{
    /// <summary>Binds <see cref="InferenceAccessOptions"/> and puts the REST key check in front of the whole pipeline.</summary>
    public static IServiceCollection AddInferenceApiKeys(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<InferenceAccessOptions>().Bind(configuration.GetSection(InferenceAccessOptions.SectionName));
        services.TryAddSingleton<InferenceApiKeys>();
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

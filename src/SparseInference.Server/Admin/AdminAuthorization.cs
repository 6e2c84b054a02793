using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SparseInference.Serving;

namespace SparseInference.Server.Admin;

/// <summary>
/// Guards every admin route: right port, then a bearer token compared in constant time.
/// Missing credentials give 401, wrong ones 403, and no configured token refuses everything with 403.
/// </summary>
internal static class AdminAuthorization
{
    public static async ValueTask<object?> FilterAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next) =>
        Refusal(context.HttpContext) ?? await next(context).ConfigureAwait(false);

    /// <summary>Why the request may not reach an admin route, or null when it may (right port, right token).</summary>
    public static IResult? Refusal(HttpContext http)
    {
        var options = http.RequestServices.GetRequiredService<IOptionsMonitor<AdminOptions>>().CurrentValue;
        if (options.Port > 0 && http.Connection.LocalPort != options.Port)
        {
            // Invisible on the public ports rather than "forbidden": nothing to probe there.
            return Results.NotFound();
        }

        if (!options.HasToken)
        {
            return AdminResults.Error(StatusCodes.Status403Forbidden,
                $"admin token: expected {AdminOptions.SectionName}:Token to be configured (at least {AdminOptions.MinTokenLength} characters), actual none; the admin API refuses all requests until one is set");
        }

        string? header = http.Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header) || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return AdminResults.Error(StatusCodes.Status401Unauthorized, "authorization: expected 'Bearer <token>', actual " + (string.IsNullOrEmpty(header) ? "no Authorization header" : "another scheme"));
        }

        if (!TokensEqual(header["Bearer ".Length..].Trim(), options.Token!))
        {
            return AdminResults.Error(StatusCodes.Status403Forbidden, "authorization: the bearer token does not match the configured admin token");
        }

        return null;
    }

    /// <summary>Hashing first makes the comparison constant-time in the token length as well as its content.</summary>
    internal static bool TokensEqual(string presented, string expected) =>
        CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(presented)),
            SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
}

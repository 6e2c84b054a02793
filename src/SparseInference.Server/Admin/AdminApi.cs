using System.Globalization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using SparseInference.Server.Hosting;
using SparseInference.Serving.Hosting;
using SparseInference.Serving;

namespace SparseInference.Server.Admin;

/// <summary>Everything the admin port serves, behind the admin bearer token (<see cref="AdminAuthorization"/>).</summary>
public static class AdminApi
{
    /// <summary>
    /// Binds <see cref="AdminOptions"/> from "SparseInference:Admin", validated at start; its port follows
    /// "SparseInference:Ports:Admin" unless set.
    /// </summary>
    public static IServiceCollection AddAdminApi(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<AdminOptions>()
            .Configure<IConfiguration>((admin, configuration) =>
            {
                var section = configuration.GetSection(AdminOptions.SectionName);
                section.Bind(admin);
                if (string.IsNullOrEmpty(section[nameof(AdminOptions.Port)]))
                {
                    // The listener's port, read from its own key so that the admin options do not wait on the whole tree.
                    var ports = configuration.GetSection($"{SparseInferenceOptions.SectionName}:{nameof(SparseInferenceOptions.Ports)}");
                    admin.Port = int.TryParse(ports[nameof(PortOptions.Admin)], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
                        ? port
                        : new PortOptions().Admin;
                }
            })
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AdminOptions>, AdminOptionsValidator>());
        return services;
    }

    /// <summary>
    /// Maps the admin API on <paramref name="port"/> only: the variants, split, rollout, guardrails and comparison routes under
    /// <c>/admin</c>, the line baselines under <c>/admin/models/{model}/baselines</c>, and model control (repository index,
    /// load, unload). One line per feature.
    /// </summary>
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder endpoints, int port)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapSparseInferenceAdmin().RequireLocalPort(port);
        endpoints.MapSparseInferenceBaselines().RequireLocalPort(port);
        endpoints.MapSparseInferenceModelControl().RequireLocalPort(port);
        return endpoints;
    }
}

using System.Text.Json;
using Microsoft.Extensions.Configuration;
using SparseInference.Server.Admin;
using SparseInference.Server.Observability.Tracing;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Tests.Hosting;

/// <summary>
/// The shipped appsettings.json spells the defaults out for operators and for the deployment checks; the options classes
/// hold them. The file may only repeat them, never differ.
/// </summary>
public sealed class OptionsDefaultsTests
{
    private static readonly IConfiguration Shipped = new ConfigurationBuilder().AddJsonFile(AppSettingsPath(), optional: false).Build();

    [Fact]
    public void AppSettings_SparseInferenceSection_RepeatsTheOptionsDefaults()
    {
        var shipped = Shipped.GetSection(SparseInferenceOptions.SectionName).Get<SparseInferenceOptions>()!;
        var defaults = new SparseInferenceOptions();

        Assert.Equal(Json(defaults), Json(shipped));
    }

    [Fact]
    public void AppSettings_HostNodes_RepeatTheirDefaults()
    {
        // The admin token has no default: absent and blank both mean "not configured".
        var admin = Shipped.GetSection(AdminOptions.SectionName).Get<AdminOptions>()!;
        Assert.Equal((new AdminOptions().Port, false), (admin.Port, admin.HasToken));
        Assert.Equal(Json(new TracingOptions()), Json(Shipped.GetSection(TracingOptions.SectionName).Get<TracingOptions>()!));
    }

    private static string Json<T>(T value) => JsonSerializer.Serialize(value);

    private static string AppSettingsPath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
            {
                return Path.Combine(dir.FullName, "src", "SparseInference.Server", "appsettings.json");
            }
        }

        throw new DirectoryNotFoundException($"no SparseInference.sln above {AppContext.BaseDirectory}");
    }
}

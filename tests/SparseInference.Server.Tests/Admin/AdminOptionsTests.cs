using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SparseInference.Server.Admin;

namespace SparseInference.Server.Tests.Admin;

public sealed class AdminOptionsTests
{
    private static ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddAdminApi();
        return services.BuildServiceProvider();
    }

    [Fact]
    public void AdminOptions_ShortToken_FailsValidationWithFieldExpectedActual()
    {
        using var provider = Provider(new() { ["SparseInference:Admin:Token"] = "short" });

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<AdminOptions>>().Value);

        Assert.Contains("SparseInference:Admin:Token: expected at least 16 characters, actual 5", ex.Message);
    }

    [Theory]
    [InlineData(null, "9103", 9103)]
    [InlineData("9200", "9103", 9200)]
    [InlineData(null, null, 8003)]
    public void AdminOptions_Port_FollowsHostAdminPortUnlessSet(string? adminPort, string? hostPort, int expected)
    {
        using var provider = Provider(new() { ["SparseInference:Admin:Port"] = adminPort, ["SparseInference:Ports:Admin"] = hostPort });

        Assert.Equal(expected, provider.GetRequiredService<IOptions<AdminOptions>>().Value.Port);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void AdminOptions_BlankToken_ValidMeaningNotConfigured(string token)
    {
        using var provider = Provider(new() { ["SparseInference:Admin:Token"] = token });

        Assert.False(provider.GetRequiredService<IOptions<AdminOptions>>().Value.HasToken);
    }
}

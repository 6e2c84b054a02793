namespace SparseInference.Deploy.Tests.Infrastructure;

public sealed class ServiceDefaultsTests
{
    [Fact]
    public void Parse_CompleteSection_ReadsPortsAndShutdown()
    {
        var defaults = ServiceDefaults.Parse("""
            {
              // comments are allowed in appsettings.json
              "SparseInference": {
                "Ports": { "Rest": 1, "Grpc": 2, "Metrics": 3, "Admin": 4 },
                "Shutdown": { "DrainDelaySeconds": 6, "TimeoutSeconds": 7 },
              }
            }
            """, "test");

        Assert.Equal(new ServiceDefaults(1, 2, 3, 4, 6, 7, "test"), defaults);
    }

    [Fact]
    public void Parse_MissingShutdown_NamesTheMissingKey()
    {
        var error = Assert.Throws<InvalidDataException>(() => ServiceDefaults.Parse("""
            { "SparseInference": { "Ports": { "Rest": 1, "Grpc": 2, "Metrics": 3, "Admin": 4 } } }
            """, "appsettings.json"));

        Assert.Contains("'Shutdown'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Current_ServerAppsettings_IsTheSourceOfTheDefaults()
    {
        Assert.EndsWith(Path.Combine("src", "SparseInference.Server", "appsettings.json"), ServiceDefaults.Current.Source, StringComparison.Ordinal);
    }
}

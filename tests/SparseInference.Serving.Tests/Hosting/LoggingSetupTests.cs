using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.Hosting;

namespace SparseInference.Serving.Tests.Hosting;

public sealed class LoggingSetupTests
{
    [Fact]
    public void AddSparseInferenceLogging_LogLevelDefaultWarning_DropsInformationLines()
    {
        var output = new StringWriter();
        var configuration = Configuration(new() { ["Logging:LogLevel:Default"] = "Warning" });
        using (var provider = Build(configuration, output))
        {
            var logger = provider.GetRequiredService<ILoggerFactory>().CreateLogger("SparseInference.Test");
            logger.LogInformation("quiet {Value}", 1);
            logger.LogWarning("loud {Value}", 2);
        }

        var lines = Lines(output);
        var line = Assert.Single(lines);
        Assert.Equal("loud {Value}", line.GetProperty("MessageTemplate").GetString());
        Assert.Equal("Warning", line.GetProperty("Level").GetString());
    }

    [Fact]
    public async Task AddSparseInferenceLogging_ConcurrentEvents_EveryLineWholeOnceDisposed()
    {
        const int threads = 4;
        const int perThread = 2000;
        var output = new StringWriter();
        using (var provider = Build(Configuration([]), output))
        {
            var logger = provider.GetRequiredService<ILoggerFactory>().CreateLogger("SparseInference.Test");
            await Task.WhenAll(Enumerable.Range(0, threads).Select(t => Task.Run(() =>
            {
                for (var i = 0; i < perThread; i++)
                    logger.LogInformation("event {Thread} {Index}", t, i);
            })));
        }

        // Disposal drains the background writer: every event is out, one JSON object per line.
        var lines = Lines(output);
        Assert.Equal(threads * perThread, lines.Count);
        var seen = lines.Select(l => (l.GetProperty("Properties").GetProperty("Thread").GetInt32(), l.GetProperty("Properties").GetProperty("Index").GetInt32())).ToHashSet();
        Assert.Equal(threads * perThread, seen.Count);
    }

    private static ServiceProvider Build(IConfiguration configuration, TextWriter output) =>
        new ServiceCollection()
            .AddLogging(logging =>
            {
                logging.AddConfiguration(configuration.GetSection("Logging"));
                logging.AddSparseInferenceLogging(configuration, output);
            })
            .BuildServiceProvider();

    private static IConfiguration Configuration(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    private static List<JsonElement> Lines(StringWriter output) =>
        [.. output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone())];
}

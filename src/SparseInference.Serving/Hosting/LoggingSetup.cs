using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Serilog;
using Serilog.Formatting.Json;

namespace SparseInference.Serving.Hosting;

/// <summary>
/// Structured JSON logs through Serilog: levels and enrichment from the <c>Serilog</c> configuration section,
/// one JSON object per line on standard output (or on a given writer), in place of the plain console logger.
/// </summary>
public static class LoggingSetup
{
    public const string SectionName = "Serilog";

    /// <summary>Replaces the console logger with Serilog's JSON output; other providers stay.</summary>
    public static ILoggingBuilder AddSparseInferenceLogging(this ILoggingBuilder logging, IConfiguration configuration, TextWriter? output = null)
    {
        ArgumentNullException.ThrowIfNull(logging);
        ArgumentNullException.ThrowIfNull(configuration);
        logging.Services.RemoveAll<ConsoleLoggerProvider>();
        foreach (var descriptor in logging.Services.Where(d => d.ServiceType == typeof(ILoggerProvider) && d.ImplementationType == typeof(ConsoleLoggerProvider)).ToList())
        {
            logging.Services.Remove(descriptor);
        }

        logging.AddSerilog(CreateLogger(configuration, output ?? Console.Out), dispose: true);
        return logging;
    }

    /// <summary>
    /// A logger configured from <paramref name="configuration"/>'s <c>Serilog</c> section that writes every event as
    /// one JSON line (timestamp, level, message template, rendered message, properties) to <paramref name="output"/>.
    /// </summary>
    public static Serilog.Core.Logger CreateLogger(IConfiguration configuration, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(output);
        return new LoggerConfiguration()
            .ReadFrom.Configuration(configuration, new Serilog.Settings.Configuration.ConfigurationReaderOptions { SectionName = SectionName })
            .Enrich.FromLogContext()
            .WriteTo.Sink(new JsonLineSink(new JsonFormatter(renderMessage: true), output))
            .CreateLogger();
    }
}

/// <summary>Writes each event as one JSON line; a lock keeps lines whole when requests log concurrently.</summary>
internal sealed class JsonLineSink(Serilog.Formatting.ITextFormatter formatter, TextWriter output) : Serilog.Core.ILogEventSink
{
    private readonly Lock _gate = new();

    public void Emit(Serilog.Events.LogEvent logEvent)
    {
        lock (_gate)
        {
            formatter.Format(logEvent, output);
            output.Flush();
        }
    }
}

using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Serilog;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using Serilog.Settings.Configuration;
using SparseInference.Serving.Protocol;

namespace SparseInference.Server.Observability.Logging;

/// <summary>
/// Serilog as the host's only logger: levels from the <c>Serilog</c> section (<c>MinimumLevel</c>, which is the only filter:
/// <c>Logging:LogLevel</c> rules do not apply), console output through Serilog's async sink so that a slow console never
/// stalls a request, compact JSON (CLEF) in containers and human-readable lines in Development (<c>dotnet run</c>).
/// </summary>
public static class LoggingSetup
{
    public const string SectionName = "Serilog";

    /// <summary>Events that wait for the console; beyond this the async sink drops events rather than block the caller.</summary>
    public const int ConsoleBufferSize = 10_000;

    public const string TextTemplate = "[{Timestamp:HH:mm:ss.fff} {Level:u3}] {Message:lj}{NewLine}{Exception}";

    public static WebApplicationBuilder AddSparseInferenceLogging(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Logging.ClearProviders();
        var output = new StandardOutputSink(ConsoleFormatter(builder.Environment));
        builder.Services.AddSerilog((services, logger) => logger
            // Defaults for a server that finds no appsettings.json (started outside its content root): ASP.NET Core's and
            // grpc-dotnet's per-request lines stay out, so the request log's line is the only one. Configuration overrides them.
            .MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("Grpc", LogEventLevel.Warning)
            .ReadFrom.Configuration(builder.Configuration, new ConfigurationReaderOptions { SectionName = SectionName })
            // Sinks registered as ILogEventSink services (tests register theirs) receive every event too.
            .ReadFrom.Services(services)
            .Enrich.FromLogContext()
            .WriteTo.Async(sink => sink.Sink(output), bufferSize: ConsoleBufferSize, blockWhenFull: false, monitor: output),
            // Each host logs through its own logger; the process-wide Log.Logger stays untouched.
            preserveStaticLogger: true);
        builder.Services.TryAddSingleton<InferenceRequestLog, DiagnosticContextRequestLog>();
        return builder;
    }

    /// <summary>Human-readable lines in Development, one compact JSON object per line (rendered message included) elsewhere.</summary>
    public static ITextFormatter ConsoleFormatter(IHostEnvironment environment) =>
        environment.IsDevelopment()
            ? new MessageTemplateTextFormatter(TextTemplate, System.Globalization.CultureInfo.InvariantCulture)
            : new RenderedCompactJsonFormatter();
}

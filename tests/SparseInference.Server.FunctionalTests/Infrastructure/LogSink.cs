using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Display;

namespace SparseInference.Server.FunctionalTests.Infrastructure;

/// <summary>
/// Keeps every log event the server writes (a Serilog sink the host picks up from its services), so tests can check
/// what it reported: category (source context), level, event id and rendered message.
/// </summary>
public sealed class LogSink : ILogEventSink
{
    public ConcurrentQueue<(string Category, LogLevel Level, EventId EventId, string Message)> Entries { get; } = new();

    public void Emit(LogEvent logEvent)
    {
        var category = logEvent.Properties.TryGetValue("SourceContext", out var source) && source is ScalarValue { Value: string name } ? name : "";
        using var message = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        MessageFormatter.Format(logEvent, message);
        Entries.Enqueue((category, Level(logEvent.Level), EventIdOf(logEvent), message.ToString()));
    }

    /// <summary>Renders the message as Microsoft.Extensions.Logging does, strings without quotes.</summary>
    private static readonly MessageTemplateTextFormatter MessageFormatter = new("{Message:l}", System.Globalization.CultureInfo.InvariantCulture);

    private static LogLevel Level(LogEventLevel level) => level switch
    {
        LogEventLevel.Verbose => LogLevel.Trace,
        LogEventLevel.Debug => LogLevel.Debug,
        LogEventLevel.Information => LogLevel.Information,
        LogEventLevel.Warning => LogLevel.Warning,
        LogEventLevel.Error => LogLevel.Error,
        _ => LogLevel.Critical,
    };

    private static EventId EventIdOf(LogEvent logEvent)
    {
        if (logEvent.Properties.TryGetValue("EventId", out var value) && value is StructureValue structure)
        {
            var id = structure.Properties.FirstOrDefault(p => p.Name == "Id")?.Value is ScalarValue { Value: int number } ? number : 0;
            var name = structure.Properties.FirstOrDefault(p => p.Name == "Name")?.Value is ScalarValue { Value: string text } ? text : null;
            return new EventId(id, name);
        }

        return default;
    }
}

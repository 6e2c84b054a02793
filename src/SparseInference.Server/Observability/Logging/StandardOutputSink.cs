using System.Text;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Sinks.Async;

namespace SparseInference.Server.Observability.Logging;

/// <summary>
/// Standard output behind Serilog's async sink, written once per burst of lines. Serilog's console sink writes each event
/// through <see cref="Console.Out"/>, which flushes every 256 characters: a request line of the JSON log took four or five
/// writes, about a quarter of a small request's CPU time on two cores. Here events are formatted into a large buffer that is
/// flushed when the async sink's queue is empty, so lines that queued up together leave in one write. The async sink's
/// worker waits for events rather than polling (Serilog's batching sink wakes at its interval even when idle).
/// </summary>
internal sealed class StandardOutputSink(ITextFormatter formatter) : ILogEventSink, IAsyncLogEventSinkMonitor, IDisposable
{
    private readonly StreamWriter _output = new(Console.OpenStandardOutput(), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), bufferSize: 1 << 16) { AutoFlush = false };
    private IAsyncLogEventSinkInspector? _queue;

    public void Emit(LogEvent logEvent)
    {
        formatter.Format(logEvent, _output);
        if (_queue is not { Count: > 0 })
            _output.Flush();
    }

    public void StartMonitoring(IAsyncLogEventSinkInspector inspector) => _queue = inspector;

    public void StopMonitoring(IAsyncLogEventSinkInspector inspector) => _queue = null;

    public void Dispose() => _output.Dispose();
}

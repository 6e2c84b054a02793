using System.Text;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;

namespace SparseInference.Server.Observability.Logging;

/// <summary>
/// Writes a batch of events to standard output in one system call. Serilog's console sink writes each event through
/// <see cref="Console.Out"/>, which flushes every 256 characters: a request line of the JSON log took four or five writes,
/// about a quarter of a small request's CPU time on two cores. Batching and the bounded queue are Serilog's
/// (<see cref="IBatchedLogEventSink"/>); this class only formats into a large buffer and flushes it once per batch.
/// </summary>
internal sealed class StandardOutputBatchSink(ITextFormatter formatter) : IBatchedLogEventSink, IDisposable
{
    private readonly StreamWriter _output = new(Console.OpenStandardOutput(), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), bufferSize: 1 << 16) { AutoFlush = false };

    public Task EmitBatchAsync(IReadOnlyCollection<LogEvent> batch)
    {
        foreach (var logEvent in batch)
            formatter.Format(logEvent, _output);
        _output.Flush();
        return Task.CompletedTask;
    }

    public void Dispose() => _output.Dispose();
}

namespace SparseInference.Serving;

/// <summary>Liveness and readiness of the whole server, shared by REST, gRPC and the shutdown drain.</summary>
public sealed class ServerState
{
    public const string ServerName = "sparseinference";

    private volatile bool _started;
    private volatile bool _draining;
    private string? _faultReason;

    /// <summary>The process is up and answering, and no persistent engine fault was declared (see <see cref="MarkFaulted"/>).</summary>
    public bool IsLive => Volatile.Read(ref _faultReason) is null;

    /// <summary>Why liveness failed, or null while live.</summary>
    public string? FaultReason => Volatile.Read(ref _faultReason);

    /// <summary>The repository finished its start-up load and the server is not draining for shutdown.</summary>
    public bool IsReady => _started && !_draining;

    /// <summary>Shutting down: not ready, still answering for the drain delay.</summary>
    public bool IsDraining => _draining;

    public static string Version { get; } =
        typeof(ServerState).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>()
            .FirstOrDefault()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>Protocol extensions this server implements, as server metadata lists them.</summary>
    public static IReadOnlyList<string> Extensions { get; } = ["binary_tensor_data", "statistics", "model_repository"];

    public void MarkStarted() => _started = true;

    public void MarkDraining() => _draining = true;

    /// <summary>
    /// Declares the engine unusable (a persistent device fault): liveness fails from now on, so an orchestrator restarts
    /// the process. There is no way back short of a restart: a device in a sticky error state does not recover.
    /// </summary>
    public void MarkFaulted(string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        Interlocked.CompareExchange(ref _faultReason, reason, null);
    }
}

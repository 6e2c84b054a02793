namespace SparseInference.Serving;

/// <summary>Liveness and readiness of the whole server, shared by REST, gRPC and the shutdown drain.</summary>
public sealed class ServerState
{
    public const string ServerName = "sparseinference";

    private volatile bool _started;
    private volatile bool _draining;

    /// <summary>The process is up and answering.</summary>
    public bool IsLive => true;

    /// <summary>The repository finished its start-up load and the server is not draining for shutdown.</summary>
    public bool IsReady => _started && !_draining;

    public static string Version { get; } =
        typeof(ServerState).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>()
            .FirstOrDefault()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>Protocol extensions this server implements, as server metadata lists them.</summary>
    public static IReadOnlyList<string> Extensions { get; } = ["binary_tensor_data", "statistics", "model_repository"];

    public void MarkStarted() => _started = true;

    public void MarkDraining() => _draining = true;
}

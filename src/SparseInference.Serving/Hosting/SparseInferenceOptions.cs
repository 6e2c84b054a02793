namespace SparseInference.Serving.Hosting;

/// <summary>The <c>SparseInference</c> configuration section. Defaults live here and nowhere else.</summary>
public sealed class SparseInferenceOptions
{
    public const string SectionName = "SparseInference";

    public PortOptions Ports { get; set; } = new();

    /// <summary>Model repository directory; relative paths resolve against the content root.</summary>
    public string ModelRepository { get; set; } = "models";

    /// <summary>Compute device: <c>cpu</c> or <c>cuda</c> (optionally <c>cuda:N</c>).</summary>
    public string Device { get; set; } = "cpu";

    public ShutdownOptions Shutdown { get; set; } = new();

    public LimitOptions Limits { get; set; } = new();
}

public sealed class PortOptions
{
    public int Rest { get; set; } = 8000;
    public int Grpc { get; set; } = 8001;
    public int Metrics { get; set; } = 8002;
    public int Admin { get; set; } = 8003;
}

public sealed class ShutdownOptions
{
    /// <summary>Seconds between reporting not-ready and closing listeners, so load balancers stop routing first.</summary>
    public int DrainDelaySeconds { get; set; } = 5;

    /// <summary>Seconds the host waits for in-flight requests before stopping hard.</summary>
    public int TimeoutSeconds { get; set; } = 30;
}

public sealed class LimitOptions
{
    /// <summary>Largest REST request body (JSON header plus binary tensor data). 64 MiB by default.</summary>
    public long MaxRequestBodyBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Largest single gRPC message received or sent. 64 MiB by default.</summary>
    public int MaxGrpcMessageBytes { get; set; } = 64 * 1024 * 1024;
}

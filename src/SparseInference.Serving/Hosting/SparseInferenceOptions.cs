using SparseInference.Tensors;

namespace SparseInference.Serving.Hosting;

/// <summary>
/// The root of the options tree, the <c>SparseInference</c> configuration section. Each default lives in its node's class
/// and nowhere else, and every node is validated at start (<c>ValidateOnStart</c>): a bad value stops the process with a
/// message naming the key. The nodes:
/// <list type="bullet">
/// <item>here, bound with the root: <see cref="Ports"/>, <see cref="ModelRepository"/>, <see cref="Device"/>,
/// <see cref="Shutdown"/>, <see cref="Limits"/>, <see cref="Health"/>, <see cref="Tls"/>; the library validates what it
/// reads (<c>SparseInferenceOptionsValidator</c>), the host what it reads (listeners, limits of the transports, TLS);</item>
/// <item><c>:Variants</c> (<see cref="Variants.VariantOptions"/>), <c>:State</c> (<see cref="State.StateStoreOptions"/>) and
/// <c>:Baselines</c> (<see cref="Baselines.LineBaselineOptions"/>), bound by the library's variant, state and baseline
/// registrations;</item>
/// <item><c>:Admin</c>, <c>:Inference</c> and <c>:Tracing</c>, the host's (<c>AdminOptions</c>, <c>InferenceAccessOptions</c>,
/// <c>TracingOptions</c> in SparseInference.Server).</item>
/// </list>
/// </summary>
public sealed class SparseInferenceOptions
{
    public const string SectionName = "SparseInference";

    public PortOptions Ports { get; set; } = new();

    /// <summary>Model repository directory; relative paths resolve against the content root.</summary>
    public string ModelRepository { get; set; } = "models";

    /// <summary>
    /// Compute device: <c>cpu</c> or <c>cuda</c> (optionally <c>cuda:N</c>), as configured; parsed once, by
    /// <see cref="ComputeDevice"/>, into the typed value <see cref="ConfiguredBackend.Device"/>.
    /// </summary>
    public string Device { get; set; } = ComputeDevice.CpuName;

    public ShutdownOptions Shutdown { get; set; } = new();

    public LimitOptions Limits { get; set; } = new();

    public HealthOptions Health { get; set; } = new();

    /// <summary>HTTPS per listener; a port without a certificate stays cleartext.</summary>
    public TlsOptions Tls { get; set; } = new();
}

public sealed class HealthOptions
{
    /// <summary>
    /// Engine forwards in a row that must fail with a device error (and none succeed) before liveness fails and the
    /// orchestrator restarts the process; 0 turns the check off. A failed batch of N requests counts 1 + N (the batcher
    /// retries its members one by one), so the default survives one failed batch of up to 8 but not a device that
    /// keeps failing.
    /// </summary>
    public int DeviceFaultThreshold { get; set; } = 10;
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

    /// <summary>Largest single gRPC message received or sent. 64 MiB by default; at most <see cref="MaxGrpcMessageLimit"/>.</summary>
    public int MaxGrpcMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>
    /// Upper bound of <see cref="MaxGrpcMessageBytes"/>: a message is buffered whole before it is parsed, and protobuf
    /// cannot parse one of 2 GiB or more, so a length prefix up to 2^31−1 must always be over the limit.
    /// </summary>
    public const int MaxGrpcMessageLimit = 1 << 30;

    /// <summary>Upper bound of <see cref="MaxRequestBodyBytes"/>: a REST body is read into memory whole.</summary>
    public const long MaxRequestBodyLimit = 1L << 30;

    /// <summary>
    /// Bytes that requests in flight may hold at once (request bodies, inputs, activations, outputs; see
    /// <c>Admission/InFlightMemoryBudget</c>). 0, the default, derives it from the memory limit: half the container's
    /// cgroup limit, or a quarter of physical memory when there is none.
    /// </summary>
    public long InFlightMemoryBytes { get; set; }

    /// <summary>Smallest explicit <see cref="InFlightMemoryBytes"/>: below it even a single short window would be refused.</summary>
    public const long MinInFlightMemoryBytes = 1L << 20;
}

/// <summary>HTTPS for each of the four listeners (<c>SparseInference:Tls:Rest</c>, <c>:Grpc</c>, <c>:Metrics</c>, <c>:Admin</c>).</summary>
public sealed class TlsOptions
{
    public TlsEndpointOptions Rest { get; set; } = new();
    public TlsEndpointOptions Grpc { get; set; } = new();
    public TlsEndpointOptions Metrics { get; set; } = new();
    public TlsEndpointOptions Admin { get; set; } = new();
}

/// <summary>One listener's certificate. Without <see cref="CertificatePath"/> the listener serves cleartext HTTP.</summary>
public sealed class TlsEndpointOptions
{
    /// <summary>
    /// The server certificate: a PKCS#12 file (<c>.pfx</c>/<c>.p12</c>, key inside) or a PEM certificate (a Kubernetes
    /// TLS secret's <c>tls.crt</c>); relative paths resolve against the content root.
    /// </summary>
    public string CertificatePath { get; set; } = "";

    /// <summary>The PEM private key (<c>tls.key</c>) of a PEM certificate; empty when the key is in the certificate file.</summary>
    public string KeyPath { get; set; } = "";

    /// <summary>Password of the PKCS#12 file or of an encrypted PEM key; empty for none.</summary>
    public string Password { get; set; } = "";

    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);
}

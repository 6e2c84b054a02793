using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace SparseInference.Serving.Metrics;

/// <summary>
/// The service's instruments, on the meter <see cref="MeterName"/>. Names use dots and base units
/// (seconds, bytes); the Prometheus exporter turns them into <c>sparseinference_..._seconds</c> and so on.
/// </summary>
public sealed class ServingMetrics : IDisposable
{
    public const string MeterName = "SparseInference";

    /// <summary>Latency buckets in seconds: 100 µs to 10 s, dense around CPU forward times.</summary>
    public static readonly IReadOnlyList<double> LatencyBuckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    public static readonly IReadOnlyList<double> BatchSizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    public static readonly IReadOnlyList<double> RatioBuckets = [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _requests;
    private readonly Counter<long> _variantRequests;
    private readonly Histogram<double> _requestDuration;
    private readonly Histogram<double> _queueDuration;
    private readonly Histogram<double> _computeDuration;
    private readonly Histogram<int> _batchSize;
    private readonly Histogram<double> _paddingWaste;
    private readonly UpDownCounter<long> _queueDepth;
    private readonly Counter<long> _rejections;
    private readonly Gauge<double> _configuredSparsity;
    private readonly Histogram<double> _attentionDensity;
    private readonly Counter<long> _flopsComputed;
    private readonly Counter<long> _flopsSaved;
    private readonly Gauge<long> _weightsBytes;
    private readonly ConcurrentDictionary<VariantLabels, long> _workingBuffers = new();
    private readonly ConcurrentDictionary<VariantLabels, long> _peakWorkingBuffers = new();
    private readonly IReadOnlyList<IDeviceMemoryProbe> _deviceProbes;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>, or on an own meter when null.</summary>
    /// <param name="deviceProbes">Devices whose memory is reported; null or empty means the process view (<c>cpu</c>) alone.</param>
    public ServingMetrics(IMeterFactory? meterFactory = null, IEnumerable<IDeviceMemoryProbe>? deviceProbes = null)
    {
        var probes = deviceProbes?.ToList() ?? [];
        _deviceProbes = probes.Count > 0 ? probes : [new ProcessMemoryProbe()];
        if (meterFactory is null)
        {
            _meter = new Meter(MeterName);
            _ownsMeter = true;
        }
        else
        {
            _meter = meterFactory.Create(MeterName);
        }

        _requests = _meter.CreateCounter<long>("sparseinference.requests", "{request}",
            "Inference requests by protocol and outcome.");
        _variantRequests = _meter.CreateCounter<long>("sparseinference.variant.requests", "{request}",
            "Inference requests routed to each variant (A/B split).");
        _requestDuration = CreateHistogram<double>("sparseinference.request.duration", "s",
            "End-to-end request latency inside the server.", LatencyBuckets);
        _queueDuration = CreateHistogram<double>("sparseinference.queue.duration", "s",
            "Time a request waited in the batching queue.", LatencyBuckets);
        _computeDuration = CreateHistogram<double>("sparseinference.compute.duration", "s",
            "Time one batch spent in the engine.", LatencyBuckets);
        _batchSize = _meter.CreateHistogram<int>("sparseinference.batch.size", "{request}",
            "Requests per executed batch.", tags: null,
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchSizeBuckets.Select(b => (int)b).ToArray() });
        _paddingWaste = CreateHistogram<double>("sparseinference.batch.padding_waste", "1",
            "Padded elements over all elements of a batch.", [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1]);
        _queueDepth = _meter.CreateUpDownCounter<long>("sparseinference.queue.depth", "{request}",
            "Requests waiting in the batching queue.");
        _rejections = _meter.CreateCounter<long>("sparseinference.rejections", "{request}",
            "Requests refused before execution, by reason (queue_full, deadline, invalid).");
        _configuredSparsity = _meter.CreateGauge<double>("sparseinference.attention.configured_sparsity", "1",
            "Configured attention sparsity of each variant (0 = dense).");
        _attentionDensity = CreateHistogram<double>("sparseinference.attention.density", "1",
            "Computed over dense attention pairs, per forward.", RatioBuckets);
        _flopsComputed = _meter.CreateCounter<long>("sparseinference.attention.flops.computed", "{flop}",
            "Attention floating-point operations computed.");
        _flopsSaved = _meter.CreateCounter<long>("sparseinference.attention.flops.saved", "{flop}",
            "Attention floating-point operations skipped compared with dense attention.");
        _weightsBytes = _meter.CreateGauge<long>("sparseinference.model.weights", "By",
            "Bytes of weights held per loaded model version.");
        _meter.CreateObservableGauge("sparseinference.buffers.working", ObserveWorkingBuffers, "By",
            "Bytes of working buffers of the last forward per variant.");
        _meter.CreateObservableGauge("sparseinference.buffers.peak_working", ObservePeakWorkingBuffers, "By",
            "Largest working-buffer bytes of one forward per variant since start.");
        _meter.CreateObservableGauge("sparseinference.device.memory.used", () => ObserveDeviceMemory(total: false), "By",
            "Memory in use on each compute device (cpu: the process working set).");
        _meter.CreateObservableGauge("sparseinference.device.memory.total", () => ObserveDeviceMemory(total: true), "By",
            "Memory of each compute device (cpu: memory available to the process).");
        _meter.CreateObservableGauge("sparseinference.process.working_set", static () => Environment.WorkingSet, "By",
            "Working set of the server process.");
        _meter.CreateObservableGauge("sparseinference.gc.heap", static () => GC.GetTotalMemory(forceFullCollection: false), "By",
            "Bytes currently allocated on the managed heap.");
    }

    public Meter Meter => _meter;

    /// <summary>Counts a finished request and its end-to-end latency.</summary>
    public void RecordRequest(VariantLabels labels, string protocol, string outcome, double seconds)
    {
        var tags = labels.ToTags();
        tags.Add("protocol", protocol);
        _requestDuration.Record(seconds, tags);
        tags.Add("outcome", outcome);
        _requests.Add(1, tags);
        _variantRequests.Add(1, new TagList { { VariantLabels.ModelKey, labels.Model }, { VariantLabels.VariantKey, labels.Variant } });
    }

    public void RecordQueueDuration(VariantLabels labels, double seconds) => _queueDuration.Record(seconds, labels.ToTags());

    public void RecordComputeDuration(VariantLabels labels, double seconds) => _computeDuration.Record(seconds, labels.ToTags());

    /// <summary>Records one executed batch: its size and its padding waste (padded / total elements).</summary>
    public void RecordBatch(VariantLabels labels, int size, double paddingWaste)
    {
        var tags = labels.ToTags();
        _batchSize.Record(size, tags);
        _paddingWaste.Record(paddingWaste, tags);
    }

    public void QueueDepthChanged(VariantLabels labels, long delta) => _queueDepth.Add(delta, labels.ToTags());

    public void RecordRejection(VariantLabels labels, string reason)
    {
        var tags = labels.ToTags();
        tags.Add("reason", reason);
        _rejections.Add(1, tags);
    }

    public void SetConfiguredSparsity(VariantLabels labels, double sparsity) => _configuredSparsity.Record(sparsity, labels.ToTags());

    /// <summary>
    /// Records the attention work of one forward. <paramref name="flopsPerPair"/> is what one query-key
    /// pair costs across heads and layers (about 4 × head dim × heads × layers: QKᵀ and AV multiply-adds).
    /// </summary>
    public void RecordForward(VariantLabels labels, long computedPairs, long densePairs, long flopsPerPair)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(computedPairs);
        ArgumentOutOfRangeException.ThrowIfNegative(densePairs);
        ArgumentOutOfRangeException.ThrowIfNegative(flopsPerPair);
        var tags = labels.ToTags();
        _attentionDensity.Record(densePairs == 0 ? 1d : (double)computedPairs / densePairs, tags);
        _flopsComputed.Add(computedPairs * flopsPerPair, tags);
        _flopsSaved.Add(Math.Max(densePairs - computedPairs, 0) * flopsPerPair, tags);
    }

    public void SetWeightsBytes(string model, string version, long bytes) =>
        _weightsBytes.Record(bytes, new TagList { { VariantLabels.ModelKey, model }, { VariantLabels.VersionKey, version } });

    public void SetWorkingBufferBytes(VariantLabels labels, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        _workingBuffers[labels] = bytes;
        _peakWorkingBuffers.AddOrUpdate(labels, bytes, (_, peak) => Math.Max(peak, bytes));
    }

    public void RemoveWorkingBuffers(VariantLabels labels)
    {
        _workingBuffers.TryRemove(labels, out _);
        _peakWorkingBuffers.TryRemove(labels, out _);
    }

    /// <summary>
    /// Records the per-variant state one served forward shows: the version's weight bytes, the variant's configured sparsity and the
    /// working buffers (<see cref="WorkingBufferEstimate"/>) of the forward.
    /// </summary>
    public void RecordVariantForward(VariantLabels labels, double configuredSparsity, long workingBufferBytes, long weightBytes)
    {
        SetWeightsBytes(labels.Model, labels.Version, weightBytes);
        SetConfiguredSparsity(labels, configuredSparsity);
        SetWorkingBufferBytes(labels, workingBufferBytes);
    }

    public void Dispose()
    {
        if (_ownsMeter)
            _meter.Dispose();
    }

    private Histogram<T> CreateHistogram<T>(string name, string unit, string description, IReadOnlyList<double> buckets)
        where T : struct =>
        _meter.CreateHistogram<T>(name, unit, description, tags: null,
            advice: new InstrumentAdvice<T> { HistogramBucketBoundaries = buckets.Select(b => (T)Convert.ChangeType(b, typeof(T), System.Globalization.CultureInfo.InvariantCulture)).ToArray() });

    private IEnumerable<Measurement<long>> ObserveWorkingBuffers()
    {
        foreach (var (labels, bytes) in _workingBuffers)
            yield return new Measurement<long>(bytes, labels.ToTags());
    }

    private IEnumerable<Measurement<long>> ObservePeakWorkingBuffers()
    {
        foreach (var (labels, bytes) in _peakWorkingBuffers)
            yield return new Measurement<long>(bytes, labels.ToTags());
    }

    private IEnumerable<Measurement<long>> ObserveDeviceMemory(bool total)
    {
        foreach (var probe in _deviceProbes)
        {
            if (probe.Read() is { } reading)
                yield return new Measurement<long>(total ? reading.TotalBytes : reading.UsedBytes, new KeyValuePair<string, object?>(DeviceKey, probe.Device));
        }
    }

    public const string DeviceKey = "device";
}

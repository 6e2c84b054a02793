using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Prometheus;

namespace SparseInference.Server.Observability.Metrics;

/// <summary>
/// Publishes the measurements of the selected <see cref="System.Diagnostics.Metrics"/> instruments as prometheus-net metrics
/// named by <see cref="PrometheusNames"/>: counters as counters, up-down counters and gauges as gauges, histograms with their
/// advised buckets. prometheus-net's own MeterAdapter names every series <c>meter_instrument</c> without units, exports
/// counters as gauges, ignores bucket advice and expires idle series, so it cannot keep the names and types the dashboards read;
/// this bridge does only the naming and forwarding, prometheus-net does the aggregation and the exposition.
/// Observable instruments report at each scrape; a series an observable instrument no longer reports is removed.
/// </summary>
public sealed class PrometheusMeterBridge : IDisposable
{
    /// <summary>Prometheus' default buckets, for histograms whose instrument advises none.</summary>
    public static readonly IReadOnlyList<double> DefaultBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly MeterListener _listener;
    private readonly Func<Instrument, bool> _filter;
    private readonly IMetricFactory _factory;
    private readonly Lock _exportsLock = new();
    private readonly List<InstrumentExport> _exports = [];
    private volatile bool _disposed;

    /// <summary>Listens to every instrument for which <paramref name="filter"/> returns true and publishes it in <paramref name="registry"/>.</summary>
    public PrometheusMeterBridge(CollectorRegistry registry, Func<Instrument, bool> filter)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(filter);
        _filter = filter;
        _factory = Prometheus.Metrics.WithCustomRegistry(registry);
        _listener = new MeterListener { InstrumentPublished = OnInstrumentPublished, MeasurementsCompleted = OnMeasurementsCompleted };
        _listener.SetMeasurementEventCallback<byte>(static (_, v, t, s) => ((InstrumentExport)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<short>(static (_, v, t, s) => ((InstrumentExport)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<int>(static (_, v, t, s) => ((InstrumentExport)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<long>(static (_, v, t, s) => ((InstrumentExport)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<float>(static (_, v, t, s) => ((InstrumentExport)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<double>(static (_, v, t, s) => ((InstrumentExport)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<decimal>(static (_, v, t, s) => ((InstrumentExport)s!).Record((double)v, t));
        _listener.Start();
        registry.AddBeforeCollectCallback(ObserveInstruments);
    }

    public void Dispose()
    {
        _disposed = true;
        _listener.Dispose();
    }

    private void OnInstrumentPublished(Instrument instrument, MeterListener listener)
    {
        if (!_filter(instrument))
            return;
        var export = new InstrumentExport(instrument, _factory);
        lock (_exportsLock)
            _exports.Add(export);
        listener.EnableMeasurementEvents(instrument, export);
    }

    /// <summary>The instrument's meter was disposed: its series leave the exposition.</summary>
    private void OnMeasurementsCompleted(Instrument instrument, object? state)
    {
        var export = (InstrumentExport)state!;
        lock (_exportsLock)
            _exports.Remove(export);
        export.RemoveAll();
    }

    /// <summary>Before each scrape: observable instruments report now, and their series not reported are removed.</summary>
    private void ObserveInstruments()
    {
        if (_disposed)
            return;
        InstrumentExport[] observable;
        lock (_exportsLock)
            observable = [.. _exports.Where(e => e.IsObservable)];
        foreach (var export in observable)
            export.BeginObservation();
        _listener.RecordObservableInstruments();
        foreach (var export in observable)
            export.EndObservation();
    }

    private enum Kind
    {
        /// <summary>A measurement is an increment (Counter).</summary>
        Increment,

        /// <summary>A measurement is the running total (ObservableCounter).</summary>
        Total,

        /// <summary>A measurement is a change of the value (UpDownCounter).</summary>
        Change,

        /// <summary>A measurement is the value (gauges, observable up-down counters).</summary>
        Value,

        /// <summary>A measurement is an observation (Histogram).</summary>
        Observation,
    }

    private sealed class InstrumentExport
    {
        private readonly Instrument _instrument;
        private readonly IMetricFactory _factory;
        private readonly Kind _kind;
        private readonly PrometheusType _type;
        private readonly string _name;
        private readonly Lock _addLock = new();
        private Series[] _series = [];
        private string[]? _tagKeys;
        private Collector? _collector;

        public InstrumentExport(Instrument instrument, IMetricFactory factory)
        {
            _instrument = instrument;
            _factory = factory;
            var definition = instrument.GetType().IsGenericType ? instrument.GetType().GetGenericTypeDefinition() : instrument.GetType();
            (_kind, _type) = definition switch
            {
                _ when definition == typeof(Counter<>) => (Kind.Increment, PrometheusType.Counter),
                _ when definition == typeof(ObservableCounter<>) => (Kind.Total, PrometheusType.Counter),
                _ when definition == typeof(UpDownCounter<>) => (Kind.Change, PrometheusType.Gauge),
                _ when definition == typeof(Histogram<>) => (Kind.Observation, PrometheusType.Histogram),
                _ => (Kind.Value, PrometheusType.Gauge),
            };
            _name = PrometheusNames.MetricName(instrument, _type);
            IsObservable = instrument.IsObservable;
        }

        public bool IsObservable { get; }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var series = Find(tags) ?? Add(tags);
            if (series is null)
                return;
            series.Observed = true;
            switch (series.Child)
            {
                case Counter.Child counter when _kind == Kind.Total:
                    counter.IncTo(value);
                    break;
                case Counter.Child counter when value >= 0:
                    counter.Inc(value);
                    break;
                case Gauge.Child gauge when _kind == Kind.Change:
                    gauge.Inc(value);
                    break;
                case Gauge.Child gauge:
                    gauge.Set(value);
                    break;
                case Histogram.Child histogram:
                    histogram.Observe(value);
                    break;
            }
        }

        public void RemoveAll()
        {
            lock (_addLock)
            {
                foreach (var series in _series)
                    RemoveChild(series);
                Volatile.Write(ref _series, []);
            }
        }

        public void BeginObservation()
        {
            foreach (var series in Volatile.Read(ref _series))
                series.Observed = false;
        }

        public void EndObservation()
        {
            lock (_addLock)
            {
                var stale = _series.Where(s => !s.Observed).ToList();
                if (stale.Count == 0)
                    return;
                foreach (var series in stale)
                    RemoveChild(series);
                Volatile.Write(ref _series, [.. _series.Except(stale)]);
            }
        }

        private void RemoveChild(Series series)
        {
            if (series.LabelValues.Length == 0)
            {
                // The series without labels is the metric itself.
                ((ChildBase)series.Child).Unpublish();
                return;
            }

            switch (_collector)
            {
                case Counter counter:
                    counter.RemoveLabelled(series.LabelValues);
                    break;
                case Gauge gauge:
                    gauge.RemoveLabelled(series.LabelValues);
                    break;
                case Histogram histogram:
                    histogram.RemoveLabelled(series.LabelValues);
                    break;
            }
        }

        /// <summary>The series whose label values equal the tags' values (tags in any order); allocates nothing.</summary>
        private Series? Find(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var keys = _tagKeys;
            if (keys is null || tags.Length != keys.Length)
                return null;
            foreach (var series in Volatile.Read(ref _series))
            {
                if (series.Matches(keys, tags))
                    return series;
            }

            return null;
        }

        private Series? Add(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            lock (_addLock)
            {
                if (Find(tags) is { } existing)
                    return existing;

                // The label names are the first measurement's tag keys; a measurement with other keys keeps those names.
                if (_tagKeys is null)
                {
                    var keys = new string[tags.Length];
                    for (var i = 0; i < tags.Length; i++)
                        keys[i] = tags[i].Key;
                    Array.Sort(keys, StringComparer.Ordinal);
                    _tagKeys = keys;
                    try
                    {
                        _collector = CreateCollector([.. keys.Select(PrometheusNames.SanitizeLabelName)]);
                    }
                    catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
                    {
                        // A name another instrument holds with other labels, or an illegal one: leave this instrument out.
                        Trace.WriteLine($"Prometheus export of {_instrument.Name} as {_name}: {ex.Message}");
                    }
                }

                if (_collector is null)
                    return null;

                var values = new string[_tagKeys.Length];
                for (var i = 0; i < values.Length; i++)
                    values[i] = ValueOf(tags, _tagKeys[i]) ?? string.Empty;
                if (_series.FirstOrDefault(s => s.LabelValues.AsSpan().SequenceEqual(values)) is { } sameLabels)
                    return sameLabels;
                var created = new Series(values, Child(values));
                Volatile.Write(ref _series, [.. _series, created]);
                return created;
            }
        }

        private Collector CreateCollector(string[] labelNames)
        {
            var help = string.IsNullOrWhiteSpace(_instrument.Description) ? _name : _instrument.Description;
            return _type switch
            {
                PrometheusType.Counter => _factory.CreateCounter(_name, help, new CounterConfiguration { LabelNames = labelNames }),
                PrometheusType.Histogram => _factory.CreateHistogram(_name, help, new HistogramConfiguration { LabelNames = labelNames, Buckets = BucketsOf(_instrument) }),
                _ => _factory.CreateGauge(_name, help, new GaugeConfiguration { LabelNames = labelNames }),
            };
        }

        private object Child(string[] values) => _collector switch
        {
            Counter counter => counter.WithLabels(values),
            Histogram histogram => histogram.WithLabels(values),
            Gauge gauge => gauge.WithLabels(values),
            _ => throw new UnreachableException(),
        };

        private static string? ValueOf(ReadOnlySpan<KeyValuePair<string, object?>> tags, string key)
        {
            foreach (var tag in tags)
            {
                if (string.Equals(tag.Key, key, StringComparison.Ordinal))
                    return tag.Value as string ?? Convert.ToString(tag.Value, CultureInfo.InvariantCulture);
            }

            return null;
        }

        private static double[] BucketsOf(Instrument instrument)
        {
            IEnumerable<double>? advised = instrument switch
            {
                Histogram<double> h => h.Advice?.HistogramBucketBoundaries,
                Histogram<float> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<long> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<int> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<short> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<byte> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<decimal> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                _ => null,
            };
            return [.. (advised ?? DefaultBuckets).Where(double.IsFinite).Distinct().Order()];
        }
    }

    private sealed class Series(string[] labelValues, object child)
    {
        public string[] LabelValues { get; } = labelValues;

        public object Child { get; } = child;

        public volatile bool Observed;

        /// <summary>Tags with the same keys (in any order) and the same values; string values compare without allocating.</summary>
        public bool Matches(string[] keys, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            foreach (var tag in tags)
            {
                var index = Array.IndexOf(keys, tag.Key);
                if (index < 0)
                    return false;
                var matches = tag.Value is string text
                    ? string.Equals(text, LabelValues[index], StringComparison.Ordinal)
                    : string.Equals(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? string.Empty, LabelValues[index], StringComparison.Ordinal);
                if (!matches)
                    return false;
            }

            return true;
        }
    }
}

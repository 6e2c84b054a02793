using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace SparseInference.Serving.Metrics;

/// <summary>
/// Aggregates measurements of the selected meters with a <see cref="MeterListener"/> and writes them in
/// the Prometheus text format: counters and observable counters as <c>counter</c>, up-down counters and
/// gauges as <c>gauge</c>, histograms with their explicit buckets (instrument advice, else Prometheus'
/// default buckets) as <c>histogram</c>.
/// </summary>
public sealed class PrometheusCollector : IDisposable
{
    /// <summary>Prometheus client default buckets, for histograms that give no advice.</summary>
    public static readonly IReadOnlyList<double> DefaultBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly MeterListener _listener;
    private readonly Func<Meter, bool> _meterFilter;
    private readonly object _instrumentsLock = new();
    private readonly List<InstrumentAggregate> _instruments = [];
    private readonly SemaphoreSlim _collectLock = new(1, 1);
    private bool _disposed;

    /// <summary>Listens to every meter for which <paramref name="meterFilter"/> returns true.</summary>
    public PrometheusCollector(Func<Meter, bool> meterFilter)
    {
        ArgumentNullException.ThrowIfNull(meterFilter);
        _meterFilter = meterFilter;
        _listener = new MeterListener
        {
            InstrumentPublished = OnInstrumentPublished,
            MeasurementsCompleted = OnMeasurementsCompleted,
        };
        _listener.SetMeasurementEventCallback<byte>(static (i, v, t, s) => ((InstrumentAggregate)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<short>(static (i, v, t, s) => ((InstrumentAggregate)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<int>(static (i, v, t, s) => ((InstrumentAggregate)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<long>(static (i, v, t, s) => ((InstrumentAggregate)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<float>(static (i, v, t, s) => ((InstrumentAggregate)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<double>(static (i, v, t, s) => ((InstrumentAggregate)s!).Record(v, t));
        _listener.SetMeasurementEventCallback<decimal>(static (i, v, t, s) => ((InstrumentAggregate)s!).Record((double)v, t));
        _listener.Start();
    }

    /// <summary>Listens to one meter instance only (what tests and a host with its own meter factory want).</summary>
    public PrometheusCollector(Meter meter)
        : this(m => ReferenceEquals(m, meter))
    {
    }

    /// <summary>Writes every metric family in the text format.</summary>
    public async Task WriteAsync(Stream destination, CancellationToken cancellationToken = default)
    {
        var text = await CollectAsync(cancellationToken).ConfigureAwait(false);
        var bytes = Encoding.UTF8.GetBytes(text);
        await destination.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Returns every metric family in the text format.</summary>
    public async Task<string> CollectAsync(CancellationToken cancellationToken = default)
    {
        await _collectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return Collect();
        }
        finally
        {
            _collectLock.Release();
        }
    }

    private string Collect()
    {
        InstrumentAggregate[] instruments;
        lock (_instrumentsLock)
            instruments = [.. _instruments];

        // Observable instruments report on demand; series they no longer report disappear.
        foreach (var aggregate in instruments)
        {
            if (aggregate.IsObservable)
                aggregate.Reset();
        }
        _listener.RecordObservableInstruments();

        var builder = new StringBuilder(4096);
        foreach (var family in instruments.GroupBy(a => a.Name, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var members = family.Where(a => a.Type == family.First().Type).ToArray();
            if (members.All(m => m.SeriesCount == 0))
                continue;
            var first = members[0];
            builder.Append("# HELP ").Append(family.Key).Append(' ')
                .Append(PrometheusNaming.EscapeHelp(string.IsNullOrWhiteSpace(first.Description) ? family.Key : first.Description)).Append('\n');
            builder.Append("# TYPE ").Append(family.Key).Append(' ').Append(TypeName(first.Type)).Append('\n');
            foreach (var member in members)
                member.WriteSeries(builder);
        }
        return builder.ToString();
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _listener.Dispose();
        _collectLock.Dispose();
    }

    private static string TypeName(PrometheusType type) => type switch
    {
        PrometheusType.Counter => "counter",
        PrometheusType.Gauge => "gauge",
        PrometheusType.Histogram => "histogram",
        _ => "untyped",
    };

    private void OnInstrumentPublished(Instrument instrument, MeterListener listener)
    {
        if (!_meterFilter(instrument.Meter))
            return;
        var aggregate = InstrumentAggregate.Create(instrument);
        lock (_instrumentsLock)
            _instruments.Add(aggregate);
        listener.EnableMeasurementEvents(instrument, aggregate);
    }

    private void OnMeasurementsCompleted(Instrument instrument, object? state)
    {
        lock (_instrumentsLock)
            _instruments.RemoveAll(a => ReferenceEquals(a.Instrument, instrument));
    }

    private enum Aggregation
    {
        Sum,
        LastValue,
        Histogram,
    }

    private sealed class InstrumentAggregate
    {
        private readonly object _addLock = new();
        private readonly Aggregation _aggregation;
        private readonly double[] _bounds;
        private Series[] _series = [];

        private InstrumentAggregate(Instrument instrument, PrometheusType type, Aggregation aggregation, double[] bounds)
        {
            Instrument = instrument;
            Type = type;
            _aggregation = aggregation;
            _bounds = bounds;
            Name = PrometheusNaming.MetricName(instrument, type);
            IsObservable = instrument.IsObservable;
        }

        public Instrument Instrument { get; }

        public PrometheusType Type { get; }

        public string Name { get; }

        public string? Description => Instrument.Description;

        public bool IsObservable { get; }

        public int SeriesCount => Volatile.Read(ref _series).Length;

        public static InstrumentAggregate Create(Instrument instrument)
        {
            var kind = instrument.GetType().IsGenericType ? instrument.GetType().GetGenericTypeDefinition() : instrument.GetType();
            if (kind == typeof(Counter<>))
                return new(instrument, PrometheusType.Counter, Aggregation.Sum, []);
            // Observable counters report cumulative totals: keep the last one.
            if (kind == typeof(ObservableCounter<>))
                return new(instrument, PrometheusType.Counter, Aggregation.LastValue, []);
            if (kind == typeof(UpDownCounter<>))
                return new(instrument, PrometheusType.Gauge, Aggregation.Sum, []);
            if (kind == typeof(Histogram<>))
                return new(instrument, PrometheusType.Histogram, Aggregation.Histogram, BucketsOf(instrument));
            return new(instrument, PrometheusType.Gauge, Aggregation.LastValue, []);
        }

        public void Reset() => Volatile.Write(ref _series, []);

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var series = Find(tags) ?? Add(tags);
            switch (_aggregation)
            {
                case Aggregation.Sum:
                    AddDouble(ref series.Value, value);
                    break;
                case Aggregation.LastValue:
                    Volatile.Write(ref series.Value, value);
                    break;
                default:
                    var index = Array.BinarySearch(_bounds, value);
                    // Prometheus buckets count observations <= le: an exact hit belongs to that bucket.
                    if (index < 0)
                        index = ~index;
                    Interlocked.Increment(ref series.Buckets![index]);
                    AddDouble(ref series.Value, value);
                    break;
            }
        }

        public void WriteSeries(StringBuilder builder)
        {
            foreach (var series in Volatile.Read(ref _series))
            {
                if (_aggregation != Aggregation.Histogram)
                {
                    builder.Append(Name);
                    AppendLabels(builder, series.Labels, null);
                    builder.Append(' ').Append(PrometheusNaming.FormatValue(Volatile.Read(ref series.Value))).Append('\n');
                    continue;
                }

                long cumulative = 0;
                for (var i = 0; i <= _bounds.Length; i++)
                {
                    cumulative += Interlocked.Read(ref series.Buckets![i]);
                    builder.Append(Name).Append("_bucket");
                    AppendLabels(builder, series.Labels, i < _bounds.Length ? PrometheusNaming.FormatValue(_bounds[i]) : "+Inf");
                    builder.Append(' ').Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
                }
                builder.Append(Name).Append("_sum");
                AppendLabels(builder, series.Labels, null);
                builder.Append(' ').Append(PrometheusNaming.FormatValue(Volatile.Read(ref series.Value))).Append('\n');
                builder.Append(Name).Append("_count");
                AppendLabels(builder, series.Labels, null);
                builder.Append(' ').Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }

        private static void AppendLabels(StringBuilder builder, KeyValuePair<string, string>[] labels, string? le)
        {
            if (labels.Length == 0 && le is null)
                return;
            builder.Append('{');
            var first = true;
            foreach (var (key, value) in labels)
            {
                if (!first)
                    builder.Append(',');
                first = false;
                builder.Append(key).Append("=\"").Append(PrometheusNaming.EscapeLabelValue(value)).Append('"');
            }
            if (le is not null)
            {
                if (!first)
                    builder.Append(',');
                builder.Append("le=\"").Append(le).Append('"');
            }
            builder.Append('}');
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
            return (advised ?? DefaultBuckets).Where(b => !double.IsNaN(b) && !double.IsInfinity(b)).Distinct().Order().ToArray();
        }

        private static void AddDouble(ref double target, double value)
        {
            var current = Volatile.Read(ref target);
            while (true)
            {
                var seen = Interlocked.CompareExchange(ref target, current + value, current);
                if (seen.Equals(current))
                    return;
                current = seen;
            }
        }

        private Series? Find(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            foreach (var series in Volatile.Read(ref _series))
            {
                if (series.Matches(tags))
                    return series;
            }
            return null;
        }

        private Series Add(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var labels = new KeyValuePair<string, string>[tags.Length];
            for (var i = 0; i < tags.Length; i++)
                labels[i] = new(PrometheusNaming.SanitizeLabelName(tags[i].Key), Convert.ToString(tags[i].Value, CultureInfo.InvariantCulture) ?? string.Empty);
            Array.Sort(labels, static (a, b) => string.CompareOrdinal(a.Key, b.Key));

            lock (_addLock)
            {
                var existing = Find(tags);
                if (existing is not null)
                    return existing;
                var created = new Series(labels, tags, _aggregation == Aggregation.Histogram ? new long[_bounds.Length + 1] : null);
                Volatile.Write(ref _series, [.. _series, created]);
                return created;
            }
        }
    }

    private sealed class Series
    {
        private readonly string[] _rawKeys;
        private readonly string[] _rawValues;

        public Series(KeyValuePair<string, string>[] labels, ReadOnlySpan<KeyValuePair<string, object?>> tags, long[]? buckets)
        {
            Labels = labels;
            Buckets = buckets;
            _rawKeys = new string[tags.Length];
            _rawValues = new string[tags.Length];
            for (var i = 0; i < tags.Length; i++)
            {
                _rawKeys[i] = tags[i].Key;
                _rawValues[i] = Convert.ToString(tags[i].Value, CultureInfo.InvariantCulture) ?? string.Empty;
            }
        }

        public KeyValuePair<string, string>[] Labels { get; }

        public long[]? Buckets { get; }

        public double Value;

        /// <summary>Same tags in any order; string values compare without allocating.</summary>
        public bool Matches(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.Length != _rawKeys.Length)
                return false;
            foreach (var tag in tags)
            {
                var index = Array.IndexOf(_rawKeys, tag.Key);
                if (index < 0)
                    return false;
                var matches = tag.Value is string text
                    ? string.Equals(text, _rawValues[index], StringComparison.Ordinal)
                    : string.Equals(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? string.Empty, _rawValues[index], StringComparison.Ordinal);
                if (!matches)
                    return false;
            }
            return true;
        }
    }
}

using System.Globalization;

namespace SparseInference.LoadGen;

/// <summary>One monitored line: a sensor recording replayed as a stream of windows.</summary>
public sealed class SensorLine
{
    public SensorLine(string id, int channels, float[] values)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        if (values.Length % channels != 0)
            throw new ArgumentException($"values length {values.Length} is not a multiple of {channels} channels.", nameof(values));
        Id = id;
        Channels = channels;
        Values = values;
    }

    public string Id { get; }

    public int Channels { get; }

    /// <summary>Row-major [rows, channels].</summary>
    public float[] Values { get; }

    public int Rows => Values.Length / Channels;

    /// <summary>Start rows of every full window of <paramref name="window"/> rows, <paramref name="stride"/> apart.</summary>
    public int WindowCount(int window, int stride)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(stride, 1);
        return Rows < window ? 0 : ((Rows - window) / stride) + 1;
    }

    /// <summary>The <paramref name="index"/>-th window as row-major [window, channels].</summary>
    public ReadOnlyMemory<float> Window(int index, int window, int stride)
    {
        var count = WindowCount(window, stride);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, count);
        return Values.AsMemory(index * stride * Channels, window * Channels);
    }
}

/// <summary>Reads SKAB-style CSV recordings: ';'-separated, a header row, a datetime column, sensor columns, label columns.</summary>
public static class SensorCsv
{
    /// <summary>Columns that are not sensors: timestamps and labels.</summary>
    public static readonly IReadOnlySet<string> NonSensorColumns =
        new HashSet<string>(["datetime", "anomaly", "changepoint"], StringComparer.OrdinalIgnoreCase);

    public static SensorLine ReadLine(string id, TextReader reader, int expectedChannels, char separator = ';')
    {
        var header = reader.ReadLine() ?? throw new InvalidDataException($"line '{id}': the file is empty; expected a header row.");
        var columns = header.Split(separator);
        var sensorIndexes = Enumerable.Range(0, columns.Length).Where(i => !NonSensorColumns.Contains(columns[i].Trim())).ToArray();
        if (sensorIndexes.Length != expectedChannels)
        {
            throw new InvalidDataException(
                $"line '{id}': expected {expectedChannels} sensor columns, but the header has {sensorIndexes.Length} ({string.Join(", ", sensorIndexes.Select(i => columns[i]))}).");
        }

        var values = new List<float>();
        var row = 1;
        while (reader.ReadLine() is { } text)
        {
            row++;
            if (text.Length == 0)
                continue;
            var cells = text.Split(separator);
            if (cells.Length != columns.Length)
                throw new InvalidDataException($"line '{id}' row {row}: expected {columns.Length} fields, got {cells.Length}.");
            foreach (var index in sensorIndexes)
            {
                if (!float.TryParse(cells[index], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                    throw new InvalidDataException($"line '{id}' row {row} column '{columns[index]}': expected a number, got '{cells[index]}'.");
                values.Add(value);
            }
        }
        return new SensorLine(id, expectedChannels, [.. values]);
    }

    /// <summary>
    /// Every *.csv under <paramref name="directory"/> (recursively, in ordinal path order) as one line,
    /// named by its relative path without extension, e.g. <c>valve1/3</c>.
    /// </summary>
    public static IReadOnlyList<SensorLine> ReadDirectory(string directory, int expectedChannels, int maxLines = int.MaxValue)
    {
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"CSV directory '{directory}' does not exist.");
        var files = Directory.EnumerateFiles(directory, "*.csv", SearchOption.AllDirectories)
            .Select(f => (Path: f, Id: Path.ChangeExtension(Path.GetRelativePath(directory, f), null).Replace('\\', '/')))
            .OrderBy(f => f.Id, StringComparer.Ordinal)
            .Take(maxLines)
            .ToList();
        if (files.Count == 0)
            throw new InvalidDataException($"CSV directory '{directory}' has no *.csv files.");
        var lines = new List<SensorLine>(files.Count);
        foreach (var (path, id) in files)
        {
            using var reader = new StreamReader(path);
            lines.Add(ReadLine(id, reader, expectedChannels));
        }
        return lines;
    }

    /// <summary>Synthetic lines of smooth signals, for runs without recordings.</summary>
    public static IReadOnlyList<SensorLine> Synthetic(int lines, int rows, int channels, int seed = 1)
    {
        var random = new Random(seed);
        var result = new List<SensorLine>(lines);
        for (var l = 0; l < lines; l++)
        {
            var values = new float[rows * channels];
            for (var i = 0; i < values.Length; i++)
                values[i] = (float)(Math.Sin((0.05 * (i / channels)) + (i % channels) + l) + (0.05 * random.NextDouble()));
            result.Add(new SensorLine($"synthetic-{l}", channels, values));
        }
        return result;
    }
}

/// <summary>
/// Hands out windows round-robin over lines; each line advances through its own windows and wraps, so
/// each line looks like a monitor sending consecutive windows.
/// </summary>
public sealed class WindowSource
{
    private readonly IReadOnlyList<SensorLine> _lines;
    private readonly int _window;
    private readonly int _stride;
    private readonly int[] _counts;
    private long _next;

    public WindowSource(IReadOnlyList<SensorLine> lines, int window, int stride)
    {
        _lines = lines.Where(l => l.WindowCount(window, stride) > 0).ToList();
        if (_lines.Count == 0)
            throw new ArgumentException($"No line has at least {window} rows for a window.", nameof(lines));
        _window = window;
        _stride = stride;
        _counts = [.. _lines.Select(l => l.WindowCount(window, stride))];
    }

    public int Lines => _lines.Count;

    public (string LineId, ReadOnlyMemory<float> Values) Next()
    {
        var n = Interlocked.Increment(ref _next) - 1;
        var lineIndex = (int)(n % _lines.Count);
        var round = n / _lines.Count;
        var line = _lines[lineIndex];
        return (line.Id, line.Window((int)(round % _counts[lineIndex]), _window, _stride));
    }
}

using System.Globalization;

namespace SparseInference.Evaluate;

/// <summary>One SKAB experiment file: its readings, and them standardized as the training script does (tools/train/skab_data.py).</summary>
public sealed class SkabExperiment
{
    public SkabExperiment(string group, string name, double[] raw, float[] standardized, int[] anomaly)
    {
        if (standardized.Length != anomaly.Length * SkabData.Features.Count || raw.Length != standardized.Length)
            throw new ArgumentException($"experiment {group}/{name}: {raw.Length} raw and {standardized.Length} standardized values for {anomaly.Length} rows of {SkabData.Features.Count} channels.", nameof(standardized));
        Group = group;
        Name = name;
        Raw = raw;
        Standardized = standardized;
        Anomaly = anomaly;
    }

    /// <summary><c>valve1</c> or <c>valve2</c>.</summary>
    public string Group { get; }

    /// <summary>File name without extension, e.g. <c>3</c>.</summary>
    public string Name { get; }

    public string Id => $"{Group}/{Name}";

    /// <summary>Row-major [rows, 8]: the sensor readings as the file holds them.</summary>
    public double[] Raw { get; }

    /// <summary>Row-major [rows, 8]: (raw − mean) / std of the first <see cref="SkabData.TrainRows"/> rows, rounded to FP32.</summary>
    public float[] Standardized { get; }

    /// <summary>The binary <c>anomaly</c> label of every row.</summary>
    public int[] Anomaly { get; }

    public int Rows => Anomaly.Length;

    /// <summary>The raw readings of rows [first, first + count), one array per row.</summary>
    public IReadOnlyList<double[]> RawRows(int first, int count) =>
        [.. Enumerable.Range(first, count).Select(r => Raw.AsSpan(r * SkabData.Features.Count, SkabData.Features.Count).ToArray())];
}

/// <summary>Reads the SKAB valve1/valve2 files with the protocol of the training script.</summary>
public static class SkabData
{
    public const int TrainRows = 400;
    public const string DirectoryVariable = "SKAB_DIR";

    /// <summary>The sensor columns, in the order the model was trained on.</summary>
    public static readonly IReadOnlyList<string> Features =
    [
        "Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple", "Voltage", "Volume Flow RateRMS",
    ];

    /// <summary>The experiment folders evaluated unless others are named (<c>--groups</c>).</summary>
    public static readonly IReadOnlyList<string> Groups = ["valve1", "valve2"];

    /// <summary>
    /// The SKAB folder: <c>SKAB_DIR</c> when set, else <c>../shared/data/skab</c> next to the first ancestor of
    /// <paramref name="start"/> that holds <c>SparseInference.sln</c>. Null when neither exists.
    /// </summary>
    public static string? Locate(string start)
    {
        if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } fromEnvironment)
            return Directory.Exists(fromEnvironment) ? Path.GetFullPath(fromEnvironment) : null;
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
            {
                var candidate = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "data", "skab"));
                return Directory.Exists(candidate) ? candidate : null;
            }
        }
        return null;
    }

    /// <summary>
    /// Every <c>valve1/*.csv</c> and <c>valve2/*.csv</c> in numeric file order (as the training script sorts them),
    /// or only the ids in <paramref name="only"/> (e.g. <c>valve2/3</c>).
    /// </summary>
    public static IReadOnlyList<SkabExperiment> Load(string root, IReadOnlyCollection<string>? only = null, IReadOnlyList<string>? groups = null)
    {
        var experiments = new List<SkabExperiment>();
        foreach (var group in groups ?? Groups)
        {
            var folder = Path.Combine(root, group);
            if (!Directory.Exists(folder))
                throw new DirectoryNotFoundException($"SKAB folder '{folder}' does not exist; expected {group}/*.csv under '{root}'.");
            var files = Directory.EnumerateFiles(folder, "*.csv")
                .Select(path => (Path: path, Name: Path.GetFileNameWithoutExtension(path)))
                .OrderBy(f => int.TryParse(f.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : int.MaxValue)
                .ThenBy(f => f.Name, StringComparer.Ordinal)
                .ToList();
            if (files.Count == 0)
                throw new InvalidDataException($"no CSV files in '{folder}'.");
            foreach (var (path, name) in files)
            {
                if (only is not null && !only.Contains($"{group}/{name}"))
                    continue;
                using var reader = new StreamReader(path);
                experiments.Add(Read(group, name, reader));
            }
        }
        if (only is not null)
        {
            var missing = only.Except(experiments.Select(e => e.Id)).ToList();
            if (missing.Count > 0)
                throw new FileNotFoundException($"SKAB files not found under '{root}': {string.Join(", ", missing)} (ids look like valve2/3).");
        }
        return experiments;
    }

    /// <summary>Parses one ';'-separated file: sensor columns by name, the <c>anomaly</c> label, per-file StandardScaler on the first rows.</summary>
    public static SkabExperiment Read(string group, string name, TextReader reader)
    {
        var id = $"{group}/{name}";
        var header = (reader.ReadLine() ?? throw new InvalidDataException($"{id}: the file is empty; expected a header row.")).Split(';');
        var columns = Features.Append("anomaly").Select(f =>
        {
            var index = Array.IndexOf(header, f);
            return index >= 0 ? index : throw new InvalidDataException($"{id}: column '{f}' is missing; the header has [{string.Join(", ", header)}].");
        }).ToArray();

        var raw = new List<double>();
        var labels = new List<int>();
        var line = 1;
        while (reader.ReadLine() is { } text)
        {
            line++;
            if (text.Length == 0)
                continue;
            var cells = text.Split(';');
            if (cells.Length != header.Length)
                throw new InvalidDataException($"{id} line {line}: expected {header.Length} fields, got {cells.Length}.");
            for (var c = 0; c < columns.Length; c++)
            {
                if (!double.TryParse(cells[columns[c]], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                    throw new InvalidDataException($"{id} line {line} column '{header[columns[c]]}': expected a number, got '{cells[columns[c]]}'.");
                if (c < Features.Count)
                    raw.Add(value);
                else
                    labels.Add(value != 0 ? 1 : 0);
            }
        }

        var rows = labels.Count;
        if (rows < TrainRows)
            throw new InvalidDataException($"{id}: {rows} rows, but the protocol fits the scaler on the first {TrainRows}.");
        var channels = Features.Count;
        var standardized = new float[rows * channels];
        for (var c = 0; c < channels; c++)
        {
            double sum = 0;
            for (var r = 0; r < TrainRows; r++)
                sum += raw[(r * channels) + c];
            var mean = sum / TrainRows;
            double squares = 0;
            for (var r = 0; r < TrainRows; r++)
            {
                var d = raw[(r * channels) + c] - mean;
                squares += d * d;
            }
            var std = Math.Sqrt(squares / TrainRows);
            if (std == 0)
                std = 1; // StandardScaler leaves constant columns unscaled
            for (var r = 0; r < rows; r++)
                standardized[(r * channels) + c] = (float)((raw[(r * channels) + c] - mean) / std);
        }
        return new SkabExperiment(group, name, [.. raw], standardized, [.. labels]);
    }
}

namespace SparseInference.Evaluate;

/// <summary>Confusion counts of binary point predictions and SKAB's binary metrics over them.</summary>
public readonly record struct BinaryScores(long TruePositives, long FalsePositives, long FalseNegatives, long TrueNegatives)
{
    /// <summary>2TP / (2TP + FP + FN); 1 when there is nothing to find and nothing flagged (as skab_data.binary_scores).</summary>
    public double F1 => TruePositives + FalsePositives + FalseNegatives == 0 ? 1.0 : 2.0 * TruePositives / ((2.0 * TruePositives) + FalsePositives + FalseNegatives);

    /// <summary>False alarm rate FP / (FP + TN).</summary>
    public double Far => FalsePositives + TrueNegatives == 0 ? 0.0 : (double)FalsePositives / (FalsePositives + TrueNegatives);

    /// <summary>Missing alarm rate FN / (FN + TP).</summary>
    public double Mar => FalseNegatives + TruePositives == 0 ? 0.0 : (double)FalseNegatives / (FalseNegatives + TruePositives);

    public long Points => TruePositives + FalsePositives + FalseNegatives + TrueNegatives;

    public static BinaryScores Count(ReadOnlySpan<int> labels, ReadOnlySpan<bool> predicted)
    {
        if (labels.Length != predicted.Length)
            throw new ArgumentException($"{labels.Length} labels but {predicted.Length} predictions.", nameof(predicted));
        long tp = 0, fp = 0, fn = 0, tn = 0;
        for (var i = 0; i < labels.Length; i++)
        {
            var truth = labels[i] != 0;
            if (truth && predicted[i])
                tp++;
            else if (predicted[i])
                fp++;
            else if (truth)
                fn++;
            else
                tn++;
        }
        return new BinaryScores(tp, fp, fn, tn);
    }

    public static BinaryScores operator +(BinaryScores a, BinaryScores b) =>
        new(a.TruePositives + b.TruePositives, a.FalsePositives + b.FalsePositives, a.FalseNegatives + b.FalseNegatives, a.TrueNegatives + b.TrueNegatives);
}

/// <summary>
/// The detector of the trained model (tools/train/skab_model.py <c>detect</c>): rows [TrainRows, N) of each file
/// are the test part; row t is scored by the window of <see cref="Window"/> rows ending at t (it reaches back into
/// the training part, as a monitor has the history); its point score is the mean per-timestep score over the last
/// <see cref="ScorePositions"/> positions; it is flagged when that exceeds the threshold.
/// </summary>
public sealed record SkabDetector(int Window, int ScorePositions)
{
    public int Channels => SkabData.Features.Count;

    /// <summary>First scored row of a file: the test part starts at TrainRows; every test row has a full window when Window − 1 ≤ TrainRows.</summary>
    public int FirstTestRow
    {
        get
        {
            if (Window - 1 > SkabData.TrainRows)
                throw new InvalidOperationException($"window {Window}: the first test row {SkabData.TrainRows} needs {Window - 1} earlier rows.");
            return SkabData.TrainRows;
        }
    }

    public int TestRows(SkabExperiment experiment) => Math.Max(0, experiment.Rows - FirstTestRow);

    /// <summary>Row-major [count, Window, Channels]: the windows ending at test rows first … first + count − 1 of the file's test part.</summary>
    public float[] TestWindows(SkabExperiment experiment, int first, int count)
    {
        var rowValues = Window * Channels;
        var values = new float[count * rowValues];
        for (var i = 0; i < count; i++)
        {
            var end = FirstTestRow + first + i;
            experiment.Standardized.AsSpan((end - Window + 1) * Channels, rowValues).CopyTo(values.AsSpan(i * rowValues));
        }
        return values;
    }

    /// <summary>Row-major [count, Window, Channels]: the raw readings (rounded to FP32) of the same windows as <see cref="TestWindows"/>.</summary>
    public float[] RawTestWindows(SkabExperiment experiment, int first, int count)
    {
        var rowValues = Window * Channels;
        var values = new float[count * rowValues];
        for (var i = 0; i < count; i++)
        {
            var start = (FirstTestRow + first + i - Window + 1) * Channels;
            for (var j = 0; j < rowValues; j++)
                values[(i * rowValues) + j] = (float)experiment.Raw[start + j];
        }
        return values;
    }

    /// <summary>
    /// Point scores from a per-timestep score tensor [windows, Window]. The mean is rounded to FP32 and compared
    /// with the threshold in FP32, as NumPy compares a float32 array with a Python float.
    /// </summary>
    public float[] PointScores(ReadOnlySpan<float> timestepScores, int windows)
    {
        if (timestepScores.Length != windows * Window)
            throw new ArgumentException($"score tensor has {timestepScores.Length} values, expected [{windows}, {Window}].", nameof(timestepScores));
        var points = new float[windows];
        for (var w = 0; w < windows; w++)
        {
            double sum = 0;
            var last = timestepScores.Slice(((w + 1) * Window) - ScorePositions, ScorePositions);
            foreach (var s in last)
                sum += s;
            points[w] = (float)(sum / ScorePositions);
        }
        return points;
    }

    public static bool[] Flag(ReadOnlySpan<float> pointScores, double threshold)
    {
        var limit = (float)threshold;
        var flags = new bool[pointScores.Length];
        for (var i = 0; i < flags.Length; i++)
            flags[i] = pointScores[i] > limit;
        return flags;
    }

    /// <summary>Per group (valve1, valve2) and <c>all</c>: confusion counts of the test rows flagged by comparing their point scores with one threshold.</summary>
    public IReadOnlyDictionary<string, BinaryScores> Score(IReadOnlyList<SkabExperiment> experiments, IReadOnlyList<float[]> pointScores, double threshold) =>
        Score(experiments, [.. pointScores.Select(p => Flag(p, threshold))]);

    /// <summary>Per group (valve1, valve2) and <c>all</c>: confusion counts of the flagged test rows against the labels.</summary>
    public IReadOnlyDictionary<string, BinaryScores> Score(IReadOnlyList<SkabExperiment> experiments, IReadOnlyList<bool[]> flags)
    {
        var result = new Dictionary<string, BinaryScores>(StringComparer.Ordinal);
        var all = default(BinaryScores);
        for (var e = 0; e < experiments.Count; e++)
        {
            var experiment = experiments[e];
            var labels = experiment.Anomaly.AsSpan(FirstTestRow);
            var counts = BinaryScores.Count(labels, flags[e]);
            result[experiment.Group] = result.GetValueOrDefault(experiment.Group) + counts;
            all += counts;
        }
        result["all"] = all;
        return result;
    }
}

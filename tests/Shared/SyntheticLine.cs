using System.Globalization;
using System.Text;

namespace SparseInference.Testing;

/// <summary>
/// A made-up pump line for tests that need onboarding data without the SKAB files: eight channels at the scales of SKAB's
/// (accelerometers near 0.03, current near 1 A, pressure, temperatures near 79 and 26 °C, voltage near 230 V, flow near
/// 32), smooth signals with seeded noise, in the skab-pump model's channel order.
/// </summary>
internal static class SyntheticLine
{
    public static readonly string[] Channels =
        ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple", "Voltage", "Volume Flow RateRMS"];

    private static readonly double[] Level = [0.0263, 0.0402, 0.99, 0.08, 79.1, 26.04, 231.9, 32.16];
    private static readonly double[] Swing = [0.0003, 0.0008, 0.28, 0.26, 0.5, 0.04, 10.2, 0.4];

    /// <summary><paramref name="count"/> rows of raw readings; the same seed gives the same rows.</summary>
    public static List<double[]> Rows(int count, int seed = 1, int first = 0)
    {
        var random = new Random(seed);
        var rows = new List<double[]>(count + first);
        for (var r = 0; r < first + count; r++)
        {
            var row = new double[Channels.Length];
            for (var c = 0; c < row.Length; c++)
            {
                var wave = Math.Sin((0.05 + (0.01 * c)) * r + c);
                row[c] = Level[c] + (Swing[c] * ((0.6 * wave) + (0.8 * (random.NextDouble() - 0.5))));
            }

            rows.Add(row);
        }

        return rows.GetRange(first, count);
    }

    /// <summary>The rows as CSV: a header naming the channels after a timestamp column, <paramref name="separator"/> between fields.</summary>
    public static string Csv(IEnumerable<double[]> rows, char separator = ';')
    {
        var csv = new StringBuilder("datetime").Append(separator).AppendJoin(separator, Channels).Append('\n');
        var second = 0;
        foreach (var row in rows)
        {
            csv.Append(CultureInfo.InvariantCulture, $"2020-03-09 10:{second / 60:D2}:{second % 60:D2}");
            second++;
            foreach (var value in row)
                csv.Append(separator).Append(value.ToString("R", CultureInfo.InvariantCulture));
            csv.Append('\n');
        }

        return csv.ToString();
    }

    /// <summary>The rows as the admin API's JSON body <c>{"rows": [[…], …]}</c>.</summary>
    public static string Json(IEnumerable<double[]> rows) =>
        "{\"rows\":[" + string.Join(",", rows.Select(r => "[" + string.Join(",", r.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]")) + "]}";

    /// <summary>Row-major [ends, window, channels]: the windows of <paramref name="rows"/> ending at each of <paramref name="ends"/>, as FP32.</summary>
    public static float[] Windows(IReadOnlyList<double[]> rows, IReadOnlyList<int> ends, int window)
    {
        var channels = rows[0].Length;
        var values = new float[ends.Count * window * channels];
        for (var w = 0; w < ends.Count; w++)
        {
            for (var t = 0; t < window; t++)
            {
                var row = rows[ends[w] - window + 1 + t];
                for (var c = 0; c < channels; c++)
                    values[(((w * window) + t) * channels) + c] = (float)row[c];
            }
        }

        return values;
    }
}

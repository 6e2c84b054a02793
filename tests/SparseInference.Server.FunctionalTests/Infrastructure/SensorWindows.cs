using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace SparseInference.Server.FunctionalTests.Infrastructure;

/// <summary>Deterministic sensor windows and REST request bodies for them.</summary>
internal static class SensorWindows
{
    /// <summary>A [batch, time, channels] window of smooth signals with a seeded wobble.</summary>
    public static float[] Make(int batch, int time, int channels, int seed = 1)
    {
        var random = new Random(seed);
        var values = new float[batch * time * channels];
        for (var i = 0; i < values.Length; i++)
        {
            var t = i / channels % time;
            var c = i % channels;
            values[i] = (float)(Math.Sin(0.3 * t + c) + 0.1 * random.NextDouble());
        }

        return values;
    }

    public static string Json(float[] values) => "[" + string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]";

    /// <summary>The same values as nested arrays [batch][time][channels].</summary>
    public static string NestedJson(float[] values, int batch, int time, int channels)
    {
        var sb = new StringBuilder("[");
        for (var b = 0; b < batch; b++)
        {
            sb.Append(b > 0 ? ",[" : "[");
            for (var t = 0; t < time; t++)
            {
                sb.Append(t > 0 ? ",[" : "[");
                sb.Append(string.Join(",", Enumerable.Range(0, channels).Select(c => values[((b * time) + t) * channels + c].ToString("R", CultureInfo.InvariantCulture))));
                sb.Append(']');
            }

            sb.Append(']');
        }

        return sb.Append(']').ToString();
    }

    public static string InferBody(string data, int batch, int time, int channels, string datatype = "FP32", string name = "input", string extra = "") =>
        $$"""{"id":"req-1",{{extra}}"inputs":[{"name":"{{name}}","shape":[{{batch}},{{time}},{{channels}}],"datatype":"{{datatype}}","data":{{data}}}]}""";

    public static float[] Floats(JsonNode? data) => [.. data!.AsArray().Select(v => v!.GetValue<float>())];
}

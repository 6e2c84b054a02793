using SparseInference.Models.Attention;
using SparseInference.Models.Formats;

namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>
/// A deliberately plain float64 forward of a continuous, sinusoidal, reconstruction encoder for one sequence, with
/// the attention mask given per (layer, head, query, key). Checks the engine's tiled kernels at sizes the golden
/// fixtures do not reach (d_head 32, several key chunks, partial tiles).
/// </summary>
internal sealed class NaiveEncoder
{
    private readonly Dictionary<string, double[]> _w = new(StringComparer.Ordinal);
    private readonly int _d, _heads, _layers, _dff, _channels, _outDim;

    public NaiveEncoder(string modelDirectory, int d, int heads, int layers, int dff, int channels, int outDim)
    {
        using var file = SafetensorsFile.Open(Path.Combine(modelDirectory, EncoderModel.WeightsFileName));
        foreach (var e in file.Entries)
        {
            _w[e.Name] = file.ReadFloat32(e.Name, e.Shape).Select(v => (double)v).ToArray();
        }

        (_d, _heads, _layers, _dff, _channels, _outDim) = (d, heads, layers, dff, channels, outDim);
    }

    /// <param name="allowed">(layer, head, query, key) → whether the pair is attended.</param>
    /// <param name="topK">When set, each query then keeps its topK best allowed keys (ties: lower key).</param>
    public double[] Forward(float[] input, int length, Func<int, int, int, int, bool> allowed, int? topK = null)
    {
        int d = _d, dh = d / _heads;
        var x = new double[length, d];
        for (int t = 0; t < length; t++)
        {
            for (int o = 0; o < d; o++)
            {
                double s = _w["input_proj.bias"][o];
                for (int c = 0; c < _channels; c++) s += _w["input_proj.weight"][o * _channels + c] * input[t * _channels + c];
                int i = o / 2;
                double angle = t / Math.Pow(10000.0, 2.0 * i / d);
                x[t, o] = s + (o % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
            }
        }

        for (int layer = 0; layer < _layers; layer++)
        {
            string p = $"layers.{layer}";
            var h = Norm(x, length, $"{p}.ln1");
            var qkv = Linear(h, length, $"{p}.attn.qkv", d, 3 * d);
            var attended = new double[length, d];
            for (int head = 0; head < _heads; head++)
            {
                for (int q = 0; q < length; q++)
                {
                    var scores = new List<(int Key, double Score)>();
                    for (int k = 0; k < length; k++)
                    {
                        if (!allowed(layer, head, q, k)) continue;
                        double s = 0;
                        for (int j = 0; j < dh; j++) s += qkv[q, head * dh + j] * qkv[k, d + head * dh + j];
                        scores.Add((k, s / Math.Sqrt(dh)));
                    }

                    if (topK is int keep)
                    {
                        scores = scores.OrderByDescending(s => s.Score).ThenBy(s => s.Key).Take(keep).ToList();
                    }

                    double max = scores.Max(s => s.Score);
                    double sum = scores.Sum(s => Math.Exp(s.Score - max));
                    foreach (var (k, s) in scores)
                    {
                        double pk = Math.Exp(s - max) / sum;
                        for (int j = 0; j < dh; j++) attended[q, head * dh + j] += pk * qkv[k, 2 * d + head * dh + j];
                    }
                }
            }

            Add(x, Linear(attended, length, $"{p}.attn.out", d, d), length, d);
            var f = Linear(Norm(x, length, $"{p}.ln2"), length, $"{p}.ff1", d, _dff);
            for (int t = 0; t < length; t++)
            {
                for (int j = 0; j < _dff; j++) f[t, j] = 0.5 * f[t, j] * (1 + Erf(f[t, j] / Math.Sqrt(2)));
            }

            Add(x, Linear(f, length, $"{p}.ff2", _dff, d), length, d);
        }

        var y = Linear(Norm(x, length, "final_ln"), length, "head", d, _outDim);
        var result = new double[length * _outDim];
        for (int t = 0; t < length; t++)
        {
            for (int o = 0; o < _outDim; o++) result[t * _outDim + o] = y[t, o];
        }

        return result;
    }

    private double[,] Linear(double[,] x, int rows, string name, int inF, int outF)
    {
        var w = _w[name + ".weight"];
        var b = _w[name + ".bias"];
        var y = new double[rows, outF];
        for (int t = 0; t < rows; t++)
        {
            for (int o = 0; o < outF; o++)
            {
                double s = b[o];
                for (int i = 0; i < inF; i++) s += w[o * inF + i] * x[t, i];
                y[t, o] = s;
            }
        }

        return y;
    }

    private double[,] Norm(double[,] x, int rows, string name)
    {
        var g = _w[name + ".weight"];
        var b = _w[name + ".bias"];
        var y = new double[rows, _d];
        for (int t = 0; t < rows; t++)
        {
            double mean = 0, variance = 0;
            for (int i = 0; i < _d; i++) mean += x[t, i];
            mean /= _d;
            for (int i = 0; i < _d; i++) variance += (x[t, i] - mean) * (x[t, i] - mean);
            variance /= _d;
            for (int i = 0; i < _d; i++) y[t, i] = (x[t, i] - mean) / Math.Sqrt(variance + 1e-5) * g[i] + b[i];
        }

        return y;
    }

    private static void Add(double[,] x, double[,] y, int rows, int cols)
    {
        for (int t = 0; t < rows; t++)
        {
            for (int i = 0; i < cols; i++) x[t, i] += y[t, i];
        }
    }

    /// <summary>erf to double precision via its Maclaurin series (|z| small) or continued fraction complement.</summary>
    private static double Erf(double z)
    {
        double a = Math.Abs(z);
        double result;
        if (a < 3)
        {
            double term = a, sum = a;
            for (int n = 1; n < 200; n++)
            {
                term *= -a * a / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17) break;
            }

            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // Lentz continued fraction for erfc.
            double f = a, c = a, dd = 0;
            for (int n = 1; n < 200; n++)
            {
                double an = n / 2.0;
                dd = a + an * dd;
                dd = 1 / dd;
                c = a + an / c;
                double delta = c * dd;
                f *= delta;
                if (Math.Abs(delta - 1) < 1e-16) break;
            }

            result = 1 - Math.Exp(-a * a) / Math.Sqrt(Math.PI) / f;
        }

        return z < 0 ? -result : result;
    }

    /// <summary>Token mask of a block selection.</summary>
    public static Func<int, int, int, int, bool> FromSelection(Func<int, KeyBlockSelection> selectionOfLayer, int blockSize)
        => (layer, _, q, k) => selectionOfLayer(layer).Contains(q / blockSize, k / blockSize);
}

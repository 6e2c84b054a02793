namespace SparseInference.Tensors.Tests;

/// <summary>Naive double-precision implementations the backends are checked against.</summary>
internal static class Reference
{
    /// <summary>C = act(alpha·op(A)·op(B) + beta·C + bias) for one row-major M×N matrix.</summary>
    public static double[] MatMul(float[] a, float[] b, float[]? c, int m, int n, int k, bool transA, bool transB, double alpha, double beta, float[]? bias, Activation act = Activation.None,
        long offA = 0, long offB = 0, long offC = 0)
    {
        var result = new double[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0;
                for (var p = 0; p < k; p++)
                {
                    double av = transA ? a[offA + (long)p * m + i] : a[offA + (long)i * k + p];
                    double bv = transB ? b[offB + (long)j * k + p] : b[offB + (long)p * n + j];
                    sum += av * bv;
                }
                var v = alpha * sum + (beta == 0 || c is null ? 0 : beta * c[offC + (long)i * n + j]) + (bias is null ? 0 : bias[j]);
                result[i * n + j] = act == Activation.Gelu ? Gelu(v) : v;
            }
        }
        return result;
    }

    /// <summary>erf to ~1e-15: Taylor series below 3, continued fraction for erfc above.</summary>
    public static double Erf(double x)
    {
        var ax = Math.Abs(x);
        double r;
        if (ax < 3)
        {
            double term = ax, sum = ax;
            for (var n = 1; n < 200; n++)
            {
                term *= -ax * ax / n;
                var add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc(x) = e^{-x²}/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))), evaluated bottom-up.
            double f = ax;
            for (var n = 60; n >= 1; n--) f = ax + n / 2.0 / f;
            r = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }

    public static double Gelu(double z) => 0.5 * z * (1 + Erf(z / Math.Sqrt(2)));

    public static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    public static double[] LayerNorm(float[] x, float[] gamma, float[] beta, int rows, int n, double eps)
    {
        var y = new double[rows * n];
        for (var r = 0; r < rows; r++)
        {
            double mean = 0;
            for (var i = 0; i < n; i++) mean += x[r * n + i];
            mean /= n;
            double v = 0;
            for (var i = 0; i < n; i++) v += (x[r * n + i] - mean) * (x[r * n + i] - mean);
            v /= n;
            for (var i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - mean) / Math.Sqrt(v + eps) * gamma[i] + beta[i];
        }
        return y;
    }

    public static double[] Softmax(float[] x, int rows, int n)
    {
        var y = new double[rows * n];
        for (var r = 0; r < rows; r++)
        {
            var mx = double.NegativeInfinity;
            for (var i = 0; i < n; i++) mx = Math.Max(mx, x[r * n + i]);
            double s = 0;
            for (var i = 0; i < n; i++) s += y[r * n + i] = Math.Exp(x[r * n + i] - mx);
            for (var i = 0; i < n; i++) y[r * n + i] /= s;
        }
        return y;
    }

    /// <summary>
    /// Masked softmax attention on heads-major [B, H, T, d] arrays: query t of (b, h) attends to the keys
    /// where allowed(b, h, t, j) and j &lt; L_b; queries ≥ L_b give zeros. Returns the output and the pair count.
    /// </summary>
    public static (double[] Output, long Pairs) Attention(float[] q, float[] k, float[] v, int batch, int heads, int seqLen, int d, int[] lengths, Func<int, int, int, int, bool> allowed)
    {
        var o = new double[(long)batch * heads * seqLen * d];
        long pairs = 0;
        var scale = 1 / Math.Sqrt(d);
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                var baseIdx = ((long)b * heads + h) * seqLen * d;
                for (var t = 0; t < lengths[b]; t++)
                {
                    var scores = new List<(int J, double S)>();
                    for (var j = 0; j < lengths[b]; j++)
                    {
                        if (!allowed(b, h, t, j)) continue;
                        double s = 0;
                        for (var c = 0; c < d; c++) s += (double)q[baseIdx + t * d + c] * k[baseIdx + j * d + c];
                        scores.Add((j, s * scale));
                    }
                    pairs += scores.Count;
                    if (scores.Count == 0) continue;
                    var mx = scores.Max(x => x.S);
                    var z = scores.Sum(x => Math.Exp(x.S - mx));
                    foreach (var (j, s) in scores)
                    {
                        var p = Math.Exp(s - mx) / z;
                        for (var c = 0; c < d; c++) o[baseIdx + t * d + c] += p * v[baseIdx + j * d + c];
                    }
                }
            }
        }
        return (o, pairs);
    }

    /// <summary>Top-k attention on heads-major arrays: each valid query keeps the k best valid keys (ties → lower index).</summary>
    public static double[] TopKAttention(float[] q, float[] k, float[] v, int batch, int heads, int seqLen, int d, int[] lengths, int[] keep)
    {
        var o = new double[(long)batch * heads * seqLen * d];
        var scale = 1 / Math.Sqrt(d);
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                var baseIdx = ((long)b * heads + h) * seqLen * d;
                for (var t = 0; t < lengths[b]; t++)
                {
                    var scores = new (int J, double S)[lengths[b]];
                    for (var j = 0; j < lengths[b]; j++)
                    {
                        // Scores as float, like the kernel, so the kept set is decided on the same values.
                        float s = 0;
                        for (var c = 0; c < d; c++) s += q[baseIdx + t * d + c] * k[baseIdx + j * d + c];
                        scores[j] = (j, s * scale);
                    }
                    var kept = scores.OrderByDescending(x => x.S).ThenBy(x => x.J).Take(keep[b]).ToArray();
                    var mx = kept.Max(x => x.S);
                    var z = kept.Sum(x => Math.Exp(x.S - mx));
                    foreach (var (j, s) in kept)
                    {
                        var p = Math.Exp(s - mx) / z;
                        for (var c = 0; c < d; c++) o[baseIdx + t * d + c] += p * v[baseIdx + j * d + c];
                    }
                }
            }
        }
        return o;
    }
}

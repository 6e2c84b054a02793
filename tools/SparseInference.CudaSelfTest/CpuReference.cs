using SparseInference.Tensors.Cuda.Attention;

namespace SparseInference.CudaSelfTest;

/// <summary>Plain double-precision references for every op the backend runs.</summary>
internal static class CpuReference
{
    public static float[] LayerNorm(float[] x, float[] gamma, float[] beta, int rows, int cols, float eps)
    {
        var y = new float[x.Length];
        for (var r = 0; r < rows; r++)
        {
            double mean = 0;
            for (var c = 0; c < cols; c++)
            {
                mean += x[(r * cols) + c];
            }

            mean /= cols;
            double var = 0;
            for (var c = 0; c < cols; c++)
            {
                var d = x[(r * cols) + c] - mean;
                var += d * d;
            }

            var rstd = 1 / Math.Sqrt((var / cols) + eps);
            for (var c = 0; c < cols; c++)
            {
                y[(r * cols) + c] = (float)(((x[(r * cols) + c] - mean) * rstd * gamma[c]) + beta[c]);
            }
        }

        return y;
    }

    public static float[] BiasGelu(float[] x, float[]? bias, int cols)
    {
        var y = new float[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            double z = x[i] + (bias?[i % cols] ?? 0);
            y[i] = (float)(0.5 * z * (1 + Erf(z / Math.Sqrt(2))));
        }

        return y;
    }

    /// <summary>erf to about 1e-15 (series for small |x|, continued fraction beyond).</summary>
    public static double Erf(double x)
    {
        var ax = Math.Abs(x);
        double r;
        if (ax < 2.5)
        {
            // Maclaurin series: erf x = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1)).
            double sum = 0, term = ax;
            for (var n = 0; n < 100; n++)
            {
                var add = term / ((2 * n) + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum))
                {
                    break;
                }

                term *= -ax * ax / (n + 1);
            }

            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc by Lentz's continued fraction.
            double f = ax, c = ax, d = 0;
            for (var n = 1; n < 200; n++)
            {
                var an = n / 2.0;
                d = ax + (an * d);
                d = 1 / d;
                c = ax + (an / c);
                var delta = c * d;
                f *= delta;
                if (Math.Abs(delta - 1) < 1e-16)
                {
                    break;
                }
            }

            r = 1 - (Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f);
        }

        return x < 0 ? -r : r;
    }

    /// <summary>Row-major C[m,n] = A[m,k]·B ([k,n], or [n,k] when transposed).</summary>
    public static float[] MatMul(float[] a, float[] b, int m, int n, int k, bool transposeB, int batch = 1)
    {
        var c = new float[(long)batch * m * n];
        Parallel.For(0, batch * m, bm =>
        {
            var bi = bm / m;
            var i = bm % m;
            for (var j = 0; j < n; j++)
            {
                double s = 0;
                for (var p = 0; p < k; p++)
                {
                    var bv = transposeB ? b[((long)bi * n * k) + ((long)j * k) + p] : b[((long)bi * k * n) + ((long)p * n) + j];
                    s += a[((long)bi * m * k) + ((long)i * k) + p] * bv;
                }

                c[((long)bi * m * n) + ((long)i * n) + j] = (float)s;
            }
        });
        return c;
    }

    /// <summary>
    /// Attention over contiguous [B, H, T, d] inputs for the given query rows of each (b, h);
    /// the key set is all valid keys (dense) or the layout's blocks. Queries past the valid
    /// length give zeros. Returns out[(b·H + h)·T + t] rows (only the requested rows are filled).
    /// </summary>
    public static float[] Attention(float[] q, float[] k, float[] v, int batch, int heads, int seqLen, int d,
        CsrBlockLayout? layout, int[]? seqLens, Func<int, int, int[]> rowsFor)
    {
        var o = new float[(long)batch * heads * seqLen * d];
        var scale = 1 / Math.Sqrt(d);
        Parallel.For(0, batch * heads, bh =>
        {
            var b = bh / heads;
            var h = bh % heads;
            var len = seqLens?[b] ?? seqLen;
            var baseOff = (long)bh * seqLen * d;
            var scores = new double[seqLen];
            var keys = new List<int>(seqLen);
            foreach (var t in rowsFor(b, h))
            {
                if (t >= len)
                {
                    continue;
                }

                keys.Clear();
                if (layout is null)
                {
                    for (var j = 0; j < len; j++)
                    {
                        keys.Add(j);
                    }
                }
                else
                {
                    foreach (var kb in layout.KeyBlocks(b, h, t / layout.BlockSize))
                    {
                        for (var j = kb * layout.BlockSize; j < Math.Min(len, (kb + 1) * layout.BlockSize); j++)
                        {
                            keys.Add(j);
                        }
                    }
                }

                var max = double.NegativeInfinity;
                for (var i = 0; i < keys.Count; i++)
                {
                    double s = 0;
                    var qo = baseOff + ((long)t * d);
                    var ko = baseOff + ((long)keys[i] * d);
                    for (var c = 0; c < d; c++)
                    {
                        s += q[qo + c] * k[ko + c];
                    }

                    scores[i] = s * scale;
                    max = Math.Max(max, scores[i]);
                }

                double sum = 0;
                for (var i = 0; i < keys.Count; i++)
                {
                    scores[i] = Math.Exp(scores[i] - max);
                    sum += scores[i];
                }

                var acc = new double[d];
                for (var i = 0; i < keys.Count; i++)
                {
                    var vo = baseOff + ((long)keys[i] * d);
                    for (var c = 0; c < d; c++)
                    {
                        acc[c] += scores[i] * v[vo + c];
                    }
                }

                for (var c = 0; c < d; c++)
                {
                    o[baseOff + ((long)t * d) + c] = (float)(acc[c] / sum);
                }
            }
        });
        return o;
    }

    /// <summary>Pooled block scores S(qb, kb) = q̄·k̄/√d per (b, h) over contiguous [B, H, T, d] inputs, full length.</summary>
    public static double[][] PooledScores(float[] q, float[] k, int batch, int heads, int seqLen, int d, int blockSize)
    {
        var n = (seqLen + blockSize - 1) / blockSize;
        var result = new double[batch * heads][];
        Parallel.For(0, batch * heads, bh =>
        {
            double[,] Pool(float[] x)
            {
                var pooled = new double[n, d];
                for (var blk = 0; blk < n; blk++)
                {
                    var t1 = Math.Min(seqLen, (blk + 1) * blockSize);
                    for (var t = blk * blockSize; t < t1; t++)
                    {
                        for (var c = 0; c < d; c++)
                        {
                            pooled[blk, c] += x[((((long)bh * seqLen) + t) * d) + c];
                        }
                    }

                    for (var c = 0; c < d; c++)
                    {
                        pooled[blk, c] /= t1 - (blk * blockSize);
                    }
                }

                return pooled;
            }

            var qp = Pool(q);
            var kp = Pool(k);
            var scores = new double[n * n];
            for (var qb = 0; qb < n; qb++)
            {
                for (var kb = 0; kb < n; kb++)
                {
                    double dot = 0;
                    for (var c = 0; c < d; c++)
                    {
                        dot += qp[qb, c] * kp[kb, c];
                    }

                    scores[(qb * n) + kb] = dot / Math.Sqrt(d);
                }
            }

            result[bh] = scores;
        });
        return result;
    }
}

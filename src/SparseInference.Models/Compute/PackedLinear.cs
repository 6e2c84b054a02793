namespace SparseInference.Models.Compute;

/// <summary>
/// A linear layer <c>y = x Wᵀ + b</c> with W (PyTorch <c>[out, in]</c>) repacked once at load into
/// 16-column panels of Wᵀ, so the GEMM micro-kernel streams each panel contiguously.
/// Immutable after construction: safe to share between concurrent forwards.
/// </summary>
internal sealed unsafe class PackedLinear
{
    private readonly float[] _panels;
    private readonly float[] _bias;

    public int In { get; }
    public int Out { get; }

    public PackedLinear(ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, int outFeatures, int inFeatures)
    {
        if (weight.Length != outFeatures * inFeatures)
        {
            throw new ArgumentException($"weight has {weight.Length} values, expected {outFeatures}×{inFeatures}.", nameof(weight));
        }

        if (bias.Length != outFeatures)
        {
            throw new ArgumentException($"bias has {bias.Length} values, expected {outFeatures}.", nameof(bias));
        }

        In = inFeatures;
        Out = outFeatures;
        int panels = (outFeatures + Gemm.NR - 1) / Gemm.NR;
        _panels = new float[(long)panels * inFeatures * Gemm.NR + Gemm.NR];
        for (int p = 0; p < panels; p++)
        {
            for (int k = 0; k < inFeatures; k++)
            {
                int baseIndex = (p * inFeatures + k) * Gemm.NR;
                for (int j = 0; j < Gemm.NR; j++)
                {
                    int o = p * Gemm.NR + j;
                    _panels[baseIndex + j] = o < outFeatures ? weight[o * inFeatures + k] : 0f;
                }
            }
        }

        _bias = new float[panels * Gemm.NR];
        bias.CopyTo(_bias);
    }

    /// <summary>y[m, Out] ⊕= x[m, In] Wᵀ + b, rows split over the thread pool when large enough.</summary>
    public void Apply(float* x, int ldx, int m, float* y, int ldy, GemmEpilogue epilogue)
    {
        const int rowsPerChunk = Gemm.MR * 8;
        int chunks = (m + rowsPerChunk - 1) / rowsPerChunk;
        double flops = 2.0 * m * In * Out;
        if (chunks <= 1 || flops < 2e6 || Environment.ProcessorCount == 1)
        {
            ApplyRows(x, ldx, 0, m, y, ldy, epilogue);
            return;
        }

        nint xp = (nint)x, yp = (nint)y;
        Parallel.For(0, chunks, chunk =>
        {
            int r0 = chunk * rowsPerChunk;
            int r1 = Math.Min(m, r0 + rowsPerChunk);
            ApplyRows((float*)xp, ldx, r0, r1, (float*)yp, ldy, epilogue);
        });
    }

    private void ApplyRows(float* x, int ldx, int r0, int r1, float* y, int ldy, GemmEpilogue epilogue)
    {
        int panels = (Out + Gemm.NR - 1) / Gemm.NR;
        fixed (float* w = _panels)
        fixed (float* b = _bias)
        {
            for (int p = 0; p < panels; p++)
            {
                float* panel = w + (long)p * In * Gemm.NR;
                int cols = Math.Min(Gemm.NR, Out - p * Gemm.NR);
                for (int i = r0; i < r1; i += Gemm.MR)
                {
                    Gemm.Tile(Math.Min(Gemm.MR, r1 - i), In, x + (long)i * ldx, ldx, panel, Gemm.NR,
                        y + (long)i * ldy + p * Gemm.NR, ldy, cols, b + p * Gemm.NR, epilogue);
                }
            }
        }
    }
}

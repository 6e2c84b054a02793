using System.Runtime.InteropServices;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Kernels;

/// <summary>
/// The kernels of fused_layer.cu: a small model's encoder layer in two launches (LayerNorm with the q/k/v product, then
/// attention with everything row-wise after it) and LayerNorm with a Linear (the final LayerNorm and head). FP32
/// arithmetic from FP32 weights, which the kernels read transposed ([in, out], made once by <see cref="Transpose"/>); the
/// residual stream FP32 or BF16. Sizes: d_model ≤ 128 in heads of ≤ 32, d_ff ≤ 512.
/// </summary>
public sealed unsafe class FusedLayerKernels
{
    /// <summary>Query rows per CTA (ROWS of fused_layer.cu).</summary>
    private const int Rows = 8;

    /// <summary>Threads per CTA (THREADS of fused_layer.cu).</summary>
    private const int Threads = 128;

    public const int MaxDModel = 128;
    public const int MaxHeadDim = 32;
    public const int MaxDFf = 512;

    private readonly CudaDevice device;

    internal FusedLayerKernels(CudaDevice device) => this.device = device;

    /// <summary>Whether the kernels take a layer of these sizes.</summary>
    public static bool Takes(int dModel, int heads, int dFf) =>
        dModel is > 0 and <= MaxDModel && heads > 0 && dModel % heads == 0 && dModel / heads <= MaxHeadDim && dFf is > 0 and <= MaxDFf;

    /// <summary>y [cols, rows] = x [rows, cols]ᵀ, FP32. Queued.</summary>
    public void Transpose(CudaBuffer x, CudaBuffer y, int rows, int cols)
    {
        CudaDevice.CheckRange(x, 0, (long)rows * cols * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, (long)rows * cols * 4, nameof(y));
        device.MakeCurrent();
        var f = device.Function("fused_layer.cu", "transpose_f32");
        ulong px = x.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &py, &rows, &cols };
        device.Launch(f, device.GridFor((long)rows * cols, 256), 1, 1, 256, 0, args, "transpose_f32");
    }

    /// <summary>
    /// y = LayerNorm(x)·W + b per row: x [rows, dModel] (FP32, or BF16 with <paramref name="xBf16"/>), γ and β [dModel], W
    /// [dModel, n] (a Linear weight transposed), b [n], y [rows, n] FP32. Queued.
    /// </summary>
    public void LayerNormLinear(CudaBuffer x, bool xBf16, CudaBuffer gamma, CudaBuffer beta, CudaBuffer weight, CudaBuffer bias, CudaBuffer y,
        int rows, int dModel, int n, float eps)
    {
        if (dModel is < 1 or > MaxDModel)
        {
            throw new ArgumentOutOfRangeException(nameof(dModel), dModel, $"dModel: expected 1 … {MaxDModel}.");
        }

        CudaDevice.CheckRange(x, 0, (long)rows * dModel * (xBf16 ? 2 : 4), nameof(x));
        CudaDevice.CheckRange(gamma, 0, dModel * 4L, nameof(gamma));
        CudaDevice.CheckRange(beta, 0, dModel * 4L, nameof(beta));
        CudaDevice.CheckRange(weight, 0, (long)n * dModel * 4, nameof(weight));
        CudaDevice.CheckRange(bias, 0, n * 4L, nameof(bias));
        CudaDevice.CheckRange(y, 0, (long)rows * n * 4, nameof(y));
        device.MakeCurrent();
        var f = device.Function("fused_layer.cu", "layer_norm_linear", $"D={dModel}", $"X_BF16={(xBf16 ? 1 : 0)}");
        ulong px = x.Pointer, pg = gamma.Pointer, pb = beta.Pointer, pw = weight.Pointer, pbias = bias.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &pg, &pb, &pw, &pbias, &py, &rows, &n, &eps };
        device.Launch(f, (uint)((rows + Rows - 1) / Rows), 1, 1, Threads, 0, args, "layer_norm_linear");
    }

    /// <summary>What <see cref="EncoderLayer"/> reads besides the residual stream: the Linear weights transposed ([in, out]).</summary>
    public sealed record LayerWeights(
        CudaBuffer Ln1Weight, CudaBuffer Ln1Bias, CudaBuffer QkvWeight, CudaBuffer QkvBias, CudaBuffer OutWeight, CudaBuffer OutBias,
        CudaBuffer Ln2Weight, CudaBuffer Ln2Bias, CudaBuffer Ff1Weight, CudaBuffer Ff1Bias, CudaBuffer Ff2Weight, CudaBuffer Ff2Bias);

    [StructLayout(LayoutKind.Sequential)]
    private struct FusedLayerParams
    {
        public ulong Qkv, X, SeqLens, BlockOffsets, BlockIndices;
        public ulong Wo, Bo, Ln2G, Ln2B, W1, B1, W2, B2;
        public int SeqLen, LayoutHeads, BlockSize, NumQueryBlocks;
        public float Scale, Eps;
    }

    /// <summary>
    /// One pre-LN encoder layer on x [batch·seqLen, dModel] in place: q/k/v = LN1(x)·Wqkvᵀ + b into <paramref name="qkv"/>
    /// (scratch, [batch·seqLen, 3·dModel] FP32), then per query row attention over the sequence's keys (dense, or the
    /// layout's key blocks; keys past <paramref name="seqLens"/> excluded, rows past it zero), x += out-proj, and
    /// x += FF2(GELU(FF1(LN2(x)))). Queued.
    /// </summary>
    public void EncoderLayer(LayerWeights w, CudaBuffer x, bool xBf16, CudaBuffer qkv, int batch, int seqLen, int dModel, int heads, int dFf,
        CudaBuffer? seqLens, Attention.DeviceBlockLayout? layout, float eps)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (!Takes(dModel, heads, dFf))
        {
            throw new ArgumentException($"fused layer: d_model {dModel} in {heads} heads with d_ff {dFf} is outside d_model ≤ {MaxDModel}, head dim ≤ {MaxHeadDim}, d_ff ≤ {MaxDFf}.");
        }

        var rows = batch * seqLen;
        CudaDevice.CheckRange(qkv, 0, (long)rows * 3 * dModel * 4, nameof(qkv));
        CudaDevice.CheckRange(w.OutWeight, 0, (long)dModel * dModel * 4, nameof(w));
        CudaDevice.CheckRange(w.Ff1Weight, 0, (long)dFf * dModel * 4, nameof(w));
        CudaDevice.CheckRange(w.Ff2Weight, 0, (long)dModel * dFf * 4, nameof(w));
        CudaDevice.CheckRange(w.Ff1Bias, 0, dFf * 4L, nameof(w));
        if (seqLens is not null)
        {
            CudaDevice.CheckRange(seqLens, 0, batch * 4L, nameof(seqLens));
        }

        LayerNormLinear(x, xBf16, w.Ln1Weight, w.Ln1Bias, w.QkvWeight, w.QkvBias, qkv, rows, dModel, 3 * dModel, eps);
        var f = device.Function("fused_layer.cu", "attention_ffn", $"D={dModel}", $"H={heads}", $"DFF={dFf}", $"X_BF16={(xBf16 ? 1 : 0)}");
        var p = new FusedLayerParams
        {
            Qkv = qkv.Pointer, X = x.Pointer, SeqLens = seqLens?.Pointer ?? 0,
            BlockOffsets = layout?.Offsets.Pointer ?? 0, BlockIndices = layout?.Indices.Pointer ?? 0,
            Wo = w.OutWeight.Pointer, Bo = w.OutBias.Pointer, Ln2G = w.Ln2Weight.Pointer, Ln2B = w.Ln2Bias.Pointer,
            W1 = w.Ff1Weight.Pointer, B1 = w.Ff1Bias.Pointer, W2 = w.Ff2Weight.Pointer, B2 = w.Ff2Bias.Pointer,
            SeqLen = seqLen, LayoutHeads = layout?.Layout.Heads ?? 1, BlockSize = layout?.Layout.BlockSize ?? seqLen,
            NumQueryBlocks = layout?.Layout.NumQueryBlocks ?? 1,
            Scale = (float)(1.0 / Math.Sqrt(dModel / heads)), Eps = eps,
        };
        void** args = stackalloc void*[] { &p };
        device.Launch(f, (uint)((seqLen + Rows - 1) / Rows), (uint)batch, 1, Threads, 0, args, "attention_ffn");
    }
}

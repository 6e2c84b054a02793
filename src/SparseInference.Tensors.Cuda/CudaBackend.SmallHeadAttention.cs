using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

public sealed unsafe partial class CudaBackend
{
    private const int SmallHeadMaxDim = 64;
    private const int SmallHeadMaxBlock = 256;

    /// <summary>
    /// Whether the small-head kernel (attention_small.cu) takes this call: head dim up to 64 and layout blocks up to
    /// 256 tokens (one thread per query row of a block).
    /// </summary>
    internal static bool SmallHeadKernelTakes(AttentionGeometry geometry, CsrBlockLayout? layout, out string? why)
    {
        why = null;
        if (geometry.HeadDim is < 1 or > SmallHeadMaxDim)
        {
            why = $"head dim {geometry.HeadDim} (supported: 1 to {SmallHeadMaxDim})";
        }
        else if (layout is not null && layout.BlockSize > SmallHeadMaxBlock)
        {
            why = $"block size {layout.BlockSize} (supported: up to {SmallHeadMaxBlock})";
        }

        return why is null;
    }

    /// <summary>
    /// Attention on the small-head kernel: the shapes of small sensor models (4 heads of 8 over a 64-step window,
    /// blocks of 8), where a call is a few thousand pairs per head and tensor-core tiles of 16 would be mostly padding.
    /// </summary>
    private void SmallHeadAttention(CudaBuffer q, CudaBuffer k, CudaBuffer v, CudaBuffer o, AttentionGeometry geometry,
        DeviceBlockLayout? layout, CudaBuffer? seqLens, CudaElementType type)
    {
        const int denseRows = 64;
        var rows = layout?.Layout.BlockSize ?? denseRows;
        // Keys staged per step: 16 KiB of FP32 K and V at most.
        var keys = Math.Min(rows, Math.Max(8, 2048 / geometry.HeadDim));
        var defines = new[]
        {
            $"HEAD_DIM={geometry.HeadDim}", $"ROWS={rows}", $"KEYS={keys}", $"USE_FP16={(type == CudaElementType.Float16 ? 1 : 0)}",
        };
        context.MakeCurrent();
        var f = Function("attention_small.cu", "attention_small", defines);
        var p = new AttentionParams
        {
            Q = q.Pointer, K = k.Pointer, V = v.Pointer, O = o.Pointer,
            QStrideB = geometry.Q.Batch, QStrideH = geometry.Q.Head, QStrideT = geometry.Q.Token,
            KStrideB = geometry.K.Batch, KStrideH = geometry.K.Head, KStrideT = geometry.K.Token,
            VStrideB = geometry.V.Batch, VStrideH = geometry.V.Head, VStrideT = geometry.V.Token,
            OStrideB = geometry.O.Batch, OStrideH = geometry.O.Head, OStrideT = geometry.O.Token,
            SeqLens = seqLens?.Pointer ?? 0,
            BlockOffsets = layout?.Offsets.Pointer ?? 0,
            BlockIndices = layout?.Indices.Pointer ?? 0,
            Batch = geometry.Batch,
            Heads = geometry.Heads,
            SeqLen = geometry.SeqLen,
            LayoutHeads = layout?.Layout.Heads ?? geometry.Heads,
            BlockSize = layout?.Layout.BlockSize ?? rows,
            NumQueryBlocks = layout?.Layout.NumQueryBlocks ?? CsrBlockLayout.BlockCount(geometry.SeqLen, rows),
            ScaleLog2 = (float)(1.0 / Math.Sqrt(geometry.HeadDim) * 1.4426950408889634),
        };
        void** args = stackalloc void*[] { &p };
        Launch(f, (uint)CsrBlockLayout.BlockCount(geometry.SeqLen, rows), (uint)geometry.Heads, (uint)geometry.Batch,
            (uint)rows, 0, args, "attention_small");
    }
}

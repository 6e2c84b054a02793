using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Kernels;

public sealed unsafe partial class AttentionKernels
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
    private void SmallHead(CudaBuffer q, CudaBuffer k, CudaBuffer v, CudaBuffer o, AttentionGeometry geometry,
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
        device.MakeCurrent();
        var f = device.Function("attention_small.cu", "attention_small", defines);
        var p = ParamsFor(q, k, v, o, geometry, layout, seqLens, denseBlock: rows, queryTile: rows);
        void** args = stackalloc void*[] { &p };
        device.Launch(f, (uint)CsrBlockLayout.BlockCount(geometry.SeqLen, rows), (uint)geometry.Heads, (uint)geometry.Batch,
            (uint)rows, 0, args, "attention_small");
    }
}

using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Kernels;

/// <summary>The kernels of selection.cu: the block-topk pattern's layout chosen on the GPU from q and k.</summary>
public sealed unsafe class BlockSelectionKernels
{
    private readonly CudaDevice device;

    internal BlockSelectionKernels(CudaDevice device) => this.device = device;

    /// <summary>
    /// The `block-topk` layout of model-format.md, selected on the GPU from BF16 q and k: pooled block
    /// means, pooled scores q̄·k̄/√d, and per (batch, head, query block) the block itself plus the K − 1
    /// other blocks with the largest score (ties: lower kb), K = clamp(round((1 − s)·n), 1, n). The
    /// selection comes back to the host (B·H·n·K integers) as a checked CSR layout. Every sequence is
    /// taken as T long.
    /// </summary>
    public CsrBlockLayout SelectBlockTopK(CudaBuffer q, CudaBuffer k, AttentionGeometry geometry, int blockSize, double sparsity)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        var n = CsrBlockLayout.BlockCount(geometry.SeqLen, blockSize);
        var budget = CsrBlockLayout.Budget(sparsity, n);
        var rows = geometry.Batch * geometry.Heads * n;
        device.MakeCurrent();
        using var qPooled = device.Allocate((long)rows * geometry.HeadDim * 4, MemoryCategory.Workspace);
        using var kPooled = device.Allocate((long)rows * geometry.HeadDim * 4, MemoryCategory.Workspace);
        using var selected = device.Allocate((long)rows * budget * 4, MemoryCategory.Workspace);
        var pool = device.Function("selection.cu", "pool_blocks_bf16");
        int heads = geometry.Heads, seqLen = geometry.SeqLen, headDim = geometry.HeadDim;
        ulong noLens = 0;
        ulong px = 0, po = 0;
        long sb = 0, sh = 0, st = 0;
        void** args = stackalloc void*[] { &px, &sb, &sh, &st, &po, &heads, &seqLen, &noLens, &blockSize, &headDim };
        foreach (var (x, strides, pooled) in new[] { (q, geometry.Q, qPooled), (k, geometry.K, kPooled) })
        {
            px = x.Pointer;
            po = pooled.Pointer;
            (sb, sh, st) = (strides.Batch, strides.Head, strides.Token);
            device.Launch(pool, (uint)n, (uint)heads, (uint)geometry.Batch, (uint)Math.Min(128, headDim), 0, args, "pool_blocks_bf16");
        }

        var select = device.Function("selection.cu", "block_topk_select");
        ulong pq = qPooled.Pointer, pk = kPooled.Pointer, ps = selected.Pointer;
        var scale = (float)(1 / Math.Sqrt(headDim));
        void** selectArgs = stackalloc void*[] { &pq, &pk, &ps, &heads, &headDim, &budget, &scale };
        device.Launch(select, (uint)n, (uint)heads, (uint)geometry.Batch, 32, (uint)(n * 4), selectArgs, "block_topk_select");

        var picked = new int[rows * budget];
        device.Download<int>(selected, picked);
        var offsets = new int[rows + 1];
        for (var r = 0; r < rows; r++)
        {
            Array.Sort(picked, r * budget, budget);
            offsets[r + 1] = (r + 1) * budget;
        }

        return new CsrBlockLayout(geometry.Batch, geometry.Heads, n, n, blockSize, offsets, picked);
    }
}

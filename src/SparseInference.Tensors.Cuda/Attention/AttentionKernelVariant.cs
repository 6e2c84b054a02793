namespace SparseInference.Tensors.Cuda.Attention;

/// <summary>
/// Build choices of the attention kernel, measured against each other in the self-test.
/// </summary>
/// <param name="RowsPerWarp">16 or 32 query rows per warp; 32 reuses each K/V fragment read from shared memory twice.</param>
/// <param name="FastExp">Softmax exponentials as packed BF16 pairs (BF16 inputs only).</param>
/// <param name="MinBlocksPerMultiprocessor">CTAs per multiprocessor the register allocation must leave room for (1: no limit).</param>
/// <param name="Stages">K/V shared-memory buffers, 2 or 3 (3: one barrier per key tile instead of two).</param>
/// <param name="Pipelined">Software-pipelined loop over 32-key tiles: Q·Kᵀ of the next tile is issued before the softmax of this one (implies 3 stages).</param>
/// <param name="WideKeyTiles">128-key tiles with Q re-read from shared memory (halves per-tile overhead; not with Pipelined).</param>
/// <param name="Wgmma">
/// The Hopper kernel (attention_sm90.cu: wgmma.mma_async, sm_90a) where the call allows it: compute capability 9.0,
/// head dim 64, dense or block size 128; other calls run the mma.sync kernel with the remaining settings.
/// With it, <paramref name="Stages"/> (2 or 3) and <paramref name="MinBlocksPerMultiprocessor"/> (1 or 2) apply to
/// the Hopper kernel, <paramref name="FastExp"/> too; the other settings only to the fallback.
/// </param>
/// <param name="WarpSpecializedDense">
/// With <paramref name="Wgmma"/>: dense calls take the warp-specialised build instead (a producer warpgroup copying
/// K/V through mbarriers, three consumer warpgroups of 64 rows taking turns on the tensor cores, 192-query tiles,
/// four stages); block-sparse calls keep the two-CTA build, whose query tile must be the layout's 128-row block.
/// </param>
public readonly record struct AttentionKernelVariant(int RowsPerWarp, bool FastExp, int MinBlocksPerMultiprocessor = 1, int Stages = 2, bool Pipelined = false, bool WideKeyTiles = false, bool Wgmma = false, bool WarpSpecializedDense = false)
{
    /// <summary>The mma.sync kernel (v5 in docs/cuda-notes.md): any CUDA GPU of compute capability 8.0 or newer.</summary>
    public static AttentionKernelVariant Default { get; } = new(32, false);

    /// <summary>
    /// The wgmma kernel as measured best (docs/cuda-notes.md): block-sparse calls with 128-key tiles, two K/V stages,
    /// registers capped for two CTAs per multiprocessor so that one CTA's softmax overlaps the other's products; dense
    /// calls warp-specialised with three consumer warpgroups. The default on compute capability 9.0.
    /// </summary>
    public static AttentionKernelVariant Hopper { get; } = new(32, false, MinBlocksPerMultiprocessor: 2, Stages: 2, Wgmma: true, WarpSpecializedDense: true);

    public override string ToString() => Wgmma
        ? $"wgmma, {Stages} stages{(MinBlocksPerMultiprocessor > 1 ? $", {MinBlocksPerMultiprocessor} CTAs/SM" : "")}{(FastExp ? ", bf16 exp" : "")}{(WarpSpecializedDense ? ", dense warp-specialised" : "")}"
        : $"rows/warp {RowsPerWarp}{(FastExp ? ", bf16 exp" : "")}{(MinBlocksPerMultiprocessor > 1 ? $", {MinBlocksPerMultiprocessor} CTAs/SM" : "")}{(Stages != 2 ? $", {Stages} stages" : "")}{(Pipelined ? ", pipelined" : "")}{(WideKeyTiles ? ", 128-key tiles" : "")}";
}

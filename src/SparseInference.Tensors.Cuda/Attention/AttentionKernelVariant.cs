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
public readonly record struct AttentionKernelVariant(int RowsPerWarp, bool FastExp, int MinBlocksPerMultiprocessor = 1, int Stages = 2, bool Pipelined = false, bool WideKeyTiles = false)
{
    public static AttentionKernelVariant Default { get; } = new(32, false);

    public override string ToString() =>
        $"rows/warp {RowsPerWarp}{(FastExp ? ", bf16 exp" : "")}{(MinBlocksPerMultiprocessor > 1 ? $", {MinBlocksPerMultiprocessor} CTAs/SM" : "")}{(Stages != 2 ? $", {Stages} stages" : "")}{(Pipelined ? ", pipelined" : "")}{(WideKeyTiles ? ", 128-key tiles" : "")}";
}

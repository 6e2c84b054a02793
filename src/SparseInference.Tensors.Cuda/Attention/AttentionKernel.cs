namespace SparseInference.Tensors.Cuda.Attention;

/// <summary>Which attention kernel a call runs (docs/cuda-notes.md has the measurements behind each).</summary>
public enum AttentionKernel
{
    /// <summary><see cref="Wgmma"/> on compute capability 9.0, <see cref="MmaSync"/> elsewhere: the default.</summary>
    Auto,

    /// <summary>
    /// attention.cu (v5 in the notes): mma.sync m16n8k16, two 16-row tiles per warp, double-buffered K/V, split rows;
    /// any GPU of compute capability 8.0 or newer.
    /// </summary>
    MmaSync,

    /// <summary>
    /// attention_sm90.cu (sm_90a): block-sparse calls on the two-CTA build (w8: 128-query tiles, two stages, registers
    /// capped for two CTAs per multiprocessor), dense calls on the warp-specialised build (w11: a producer warpgroup and
    /// three consumers, 192-query tiles, four stages). Calls it cannot take (another device, head dim, block size or FP32)
    /// run <see cref="MmaSync"/>.
    /// </summary>
    Wgmma,
}

// Block selection for the block-topk pattern (model-format.md): pooled block means of q and k, the
// pooled scores S(qb, kb) = q̄·k̄ / √d, and per query block the block itself plus the K − 1 other
// blocks with the largest score (ties: lower kb). Compiled by NVRTC without include paths.

#include "bf16.cuh"

// out[(b·H + h)·n + blk][c] = mean over the block's positions t < len of x[b, h, t, c]. One CTA per
// (block, head, batch), one thread per dimension.
extern "C" __global__ void pool_blocks_bf16(const u16* x, long long strideB, long long strideH, long long strideT,
                                            float* out, int heads, int seqLen, const int* seqLens, int blockSize, int headDim) {
    int blk = blockIdx.x, h = blockIdx.y, b = blockIdx.z, n = gridDim.x;
    int len = seqLens ? seqLens[b] : seqLen;
    int t0 = blk * blockSize, t1 = min(len, t0 + blockSize);
    const u16* base = x + b * strideB + h * strideH;
    for (int c = threadIdx.x; c < headDim; c += blockDim.x) {
        float sum = 0.f;
        for (int t = t0; t < t1; ++t) sum += bf16_widen(base[(long long)t * strideT + c]);
        out[(((long long)b * heads + h) * n + blk) * headDim + c] = t1 > t0 ? sum / (t1 - t0) : 0.f;
    }
}

// selected[row·k + j]: query block qb first, then the k − 1 other blocks with the largest pooled score,
// descending (ties: lower kb); row = (b·H + h)·n + qb. One warp per row, scores staged in shared memory.
extern "C" __global__ void block_topk_select(const float* qPooled, const float* kPooled, int* selected,
                                             int heads, int headDim, int k, float scale) {
    extern __shared__ float scores[];
    int qb = blockIdx.x, h = blockIdx.y, b = blockIdx.z, n = gridDim.x;
    int lane = threadIdx.x;
    long long bh = (long long)b * heads + h;
    const float* qv = qPooled + (bh * n + qb) * headDim;
    for (int kb = lane; kb < n; kb += 32) {
        const float* kv = kPooled + (bh * n + kb) * headDim;
        float dot = 0.f;
        for (int c = 0; c < headDim; ++c) dot += qv[c] * kv[c];
        scores[kb] = dot * scale;
    }
    __syncwarp();
    int* out = selected + (bh * n + qb) * k;
    if (lane == 0) out[0] = qb;
    const float POS_INF = __int_as_float(0x7f800000), NEG_INF = __int_as_float(0xff800000);
    float pv = POS_INF;
    int pi = -1;
    for (int t = 1; t < k; ++t) {
        float bv = NEG_INF;
        int bi = 0x7fffffff;
        for (int kb = lane; kb < n; kb += 32) {
            if (kb == qb) continue;
            float v = scores[kb];
            bool eligible = v < pv || (v == pv && kb > pi);
            if (eligible && (v > bv || (v == bv && kb < bi))) { bv = v; bi = kb; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
        }
        if (lane == 0) out[t] = bi;
        pv = bv;
        pi = bi;
    }
}

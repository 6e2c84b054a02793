// The LayerNorm row shared by elementwise.cu (FP32 rows) and residual.cu (BF16 rows): biased variance, one warp per
// row, two passes (mean, then the centred sum of squares) so large offsets do not cancel (model-format.md).
// Arithmetic in FP32.
#ifndef SPARSEINFERENCE_LAYER_NORM_CUH
#define SPARSEINFERENCE_LAYER_NORM_CUH

#include "bf16.cuh"

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// One row of `cols` values read through at(c); y (FP32) and y16 (BF16) are optional, at least one is given.
template <class At>
__device__ __forceinline__ void layer_norm_row(At at, const float* gamma, const float* beta, float* y, u16* y16,
                                               int cols, float eps, int lane) {
    float sum = 0.f;
    for (int c = lane; c < cols; c += 32) sum += at(c);
    float mean = warp_sum(sum) / cols;
    float sq = 0.f;
    for (int c = lane; c < cols; c += 32) {
        float d = at(c) - mean;
        sq += d * d;
    }
    float rstd = rsqrtf(warp_sum(sq) / cols + eps);
    for (int c = lane; c < cols; c += 32) {
        float v = (at(c) - mean) * rstd * gamma[c] + beta[c];
        if (y) y[c] = v;
        if (y16) y16[c] = bf16_round(v);
    }
}

// One row of 128·k values (k = per ≤ 8) already in registers: this lane's float4s are columns lane + 32·i.
__device__ __forceinline__ void layer_norm_vec_row(const float4 (&v)[8], int per, const float4* gamma, const float4* beta,
                                                   float4* y, uint2* y16, int cols, float eps, int lane) {
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i < per) sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
    }
    float mean = warp_sum(sum) / cols;
    float sq = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i < per) {
            float a = v[i].x - mean, b = v[i].y - mean, c = v[i].z - mean, d = v[i].w - mean;
            sq += (a * a + b * b) + (c * c + d * d);
        }
    }
    float rstd = rsqrtf(warp_sum(sq) / cols + eps);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i < per) {
            int c4 = lane + 32 * i;
            float4 g = gamma[c4], bb = beta[c4], o;
            o.x = (v[i].x - mean) * rstd * g.x + bb.x;
            o.y = (v[i].y - mean) * rstd * g.y + bb.y;
            o.z = (v[i].z - mean) * rstd * g.z + bb.z;
            o.w = (v[i].w - mean) * rstd * g.w + bb.w;
            if (y) y[c4] = o;
            if (y16) y16[c4] = make_uint2(bf16_pair(o.x, o.y), bf16_pair(o.z, o.w));
        }
    }
}

#endif

// Kernels of a BF16 residual stream (IComputeBackend.ResidualDType = BF16): LayerNorm reading BF16 rows
// and the mixed FP32/BF16 add of the positions. Arithmetic in FP32, as in elementwise.cu; BF16 values are
// widened on load and results rounded to nearest-even on store.

#include "layer_norm.cuh"

// LayerNorm over BF16 rows, biased variance, one warp per row, two passes (mean, then centred sum of
// squares), as layer_norm_f32. y (FP32) and y16 (BF16) are optional, at least one is given.
extern "C" __global__ void layer_norm_bf16(const u16* x, const float* gamma, const float* beta, float* y,
                                           u16* y16, int rows, int cols, float eps) {
    int warpsPerBlock = blockDim.x >> 5;
    int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const u16* xr = x + (long long)row * cols;
    layer_norm_row([&](int c) { return bf16_widen(xr[c]); }, gamma, beta, y ? y + (long long)row * cols : nullptr,
                   y16 ? y16 + (long long)row * cols : nullptr, cols, eps, lane);
}

// LayerNorm over BF16 rows of 128·k values (k ≤ 8, rows 8-byte aligned): one warp per row holds the row
// in registers, read once as four BF16 values (8 bytes) per access; same arithmetic as layer_norm_f32_vec.
extern "C" __global__ void layer_norm_bf16_vec(const uint2* x, const float4* gamma, const float4* beta,
                                               float4* y, uint2* y16, int rows, int cols, float eps) {
    int warpsPerBlock = blockDim.x >> 5;
    int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int n4 = cols >> 2;
    int per = n4 >> 5;
    const uint2* xr = x + (long long)row * n4;
    float4 v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i < per) {
            uint2 h = xr[lane + 32 * i];
            v[i] = make_float4(__uint_as_float(h.x << 16), __uint_as_float(h.x & 0xffff0000u),
                               __uint_as_float(h.y << 16), __uint_as_float(h.y & 0xffff0000u));
        }
    }
    layer_norm_vec_row(v, per, gamma, beta, y ? y + (long long)row * n4 : nullptr, y16 ? y16 + (long long)row * n4 : nullptr, cols, eps, lane);
}

// y = a + b, each of a, b, y FP32 or BF16 (its flag set); y may be a or b (in place).
extern "C" __global__ void add_mixed(const void* a, int aBf16, const void* b, int bBf16, void* y, int yBf16, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float va = aBf16 ? bf16_widen(((const u16*)a)[i]) : ((const float*)a)[i];
        float vb = bBf16 ? bf16_widen(((const u16*)b)[i]) : ((const float*)b)[i];
        if (yBf16) {
            ((u16*)y)[i] = bf16_round(va + vb);
        } else {
            ((float*)y)[i] = va + vb;
        }
    }
}

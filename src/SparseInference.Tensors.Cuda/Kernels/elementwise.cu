// Row-wise and element-wise FP32 kernels of the encoder layer, plus BF16 conversions.
// Compiled by NVRTC without include paths: no system headers (the backend splices the file below in). Element-wise
// kernels allow y == x (in place), so no pointer is declared __restrict__.

#include "layer_norm.cuh"

// LayerNorm over the last dimension, biased variance (model-format.md). One warp per row, two
// passes over the row (mean, then centred sum of squares) so large offsets do not cancel.
// y16 (optional) receives the same values rounded to BF16: the operand copy a BF16 matrix product
// reads next, written here instead of in a separate conversion pass. y may be null when y16 is not:
// only the BF16 values are written.
extern "C" __global__ void layer_norm_f32(const float* x, const float* gamma,
                                          const float* beta, float* y, unsigned short* y16,
                                          int rows, int cols, float eps) {
    int warpsPerBlock = blockDim.x >> 5;
    int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + (long long)row * cols;
    layer_norm_row([&](int c) { return xr[c]; }, gamma, beta, y ? y + (long long)row * cols : nullptr,
                   y16 ? y16 + (long long)row * cols : nullptr, cols, eps, lane);
}

// LayerNorm for rows of 128·k values (k ≤ 8, 16-byte aligned): one warp per row keeps the row in
// registers as float4s, so x is read from memory once (the generic kernel above reads it three times
// through the cache) and every access is 16 bytes wide. Same arithmetic as layer_norm_f32.
extern "C" __global__ void layer_norm_f32_vec(const float4* x, const float4* gamma, const float4* beta,
                                              float4* y, uint2* y16, int rows, int cols, float eps) {
    int warpsPerBlock = blockDim.x >> 5;
    int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int n4 = cols >> 2;
    int per = n4 >> 5;
    const float4* xr = x + (long long)row * n4;
    float4 v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i < per) v[i] = xr[lane + 32 * i];
    }
    layer_norm_vec_row(v, per, gamma, beta, y ? y + (long long)row * n4 : nullptr, y16 ? y16 + (long long)row * n4 : nullptr, cols, eps, lane);
}

// y = GELU(x) (exact erf form) and y16 = the same rounded to BF16, four elements per thread
// (n a multiple of 4, 16-byte aligned rows): the activation of a product whose bias came in the
// product's epilogue, plus the operand copy the next BF16 product reads. y may be x.
extern "C" __global__ void gelu_f32_bf16x4(const float4* x, float4* y, uint2* y16, long long n4) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
        float4 z = x[i];
        z.x = 0.5f * z.x * (1.f + erff(z.x * 0.70710678118654752f));
        z.y = 0.5f * z.y * (1.f + erff(z.y * 0.70710678118654752f));
        z.z = 0.5f * z.z * (1.f + erff(z.z * 0.70710678118654752f));
        z.w = 0.5f * z.w * (1.f + erff(z.w * 0.70710678118654752f));
        y[i] = z;
        uint2 h;
        h.x = (unsigned)bf16_round(z.x) | ((unsigned)bf16_round(z.y) << 16);
        h.y = (unsigned)bf16_round(z.z) | ((unsigned)bf16_round(z.w) << 16);
        y16[i] = h;
    }
}

__device__ __forceinline__ float gelu_exact(float z) { return 0.5f * z * (1.f + erff(z * 0.70710678118654752f)); }

// Packs GELU of the two BF16 values in one word, back to BF16.
__device__ __forceinline__ unsigned gelu_bf16x2(unsigned h) {
    float a = gelu_exact(__uint_as_float(h << 16));
    float b = gelu_exact(__uint_as_float(h & 0xffff0000u));
    return (unsigned)bf16_round(a) | ((unsigned)bf16_round(b) << 16);
}

// y = GELU(y) in place on BF16 values, eight per thread (n a multiple of 8, 16-byte aligned): the
// activation of a product whose output is kept in BF16 only.
extern "C" __global__ void gelu_bf16x8_inplace(uint4* y, long long n8) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n8; i += (long long)gridDim.x * blockDim.x) {
        uint4 h = y[i];
        h.x = gelu_bf16x2(h.x);
        h.y = gelu_bf16x2(h.y);
        h.z = gelu_bf16x2(h.z);
        h.w = gelu_bf16x2(h.w);
        y[i] = h;
    }
}

// y = GELU(y) in place on BF16 values, one per thread (any n).
extern "C" __global__ void gelu_bf16_inplace(unsigned short* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = bf16_round(gelu_exact(__uint_as_float(((unsigned)y[i]) << 16)));
}

// FP32 → BF16, four elements per thread (n a multiple of 4, 16-byte aligned).
extern "C" __global__ void f32_to_bf16_x4(const float4* x, uint2* y, long long n4) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
        float4 z = x[i];
        uint2 h;
        h.x = (unsigned)bf16_round(z.x) | ((unsigned)bf16_round(z.y) << 16);
        h.y = (unsigned)bf16_round(z.z) | ((unsigned)bf16_round(z.w) << 16);
        y[i] = h;
    }
}

// BF16 → FP32, four elements per thread (n a multiple of 4, 16-byte aligned output).
extern "C" __global__ void bf16_to_f32_x4(const uint2* x, float4* y, long long n4) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
        uint2 h = x[i];
        float4 z;
        z.x = __uint_as_float(h.x << 16);
        z.y = __uint_as_float(h.x & 0xffff0000u);
        z.z = __uint_as_float(h.y << 16);
        z.w = __uint_as_float(h.y & 0xffff0000u);
        y[i] = z;
    }
}

// y = GELU(x + bias) with the exact erf form: 0.5·z·(1 + erf(z/√2)). bias may be null.
extern "C" __global__ void bias_gelu_f32(const float* x, const float* bias,
                                         float* y, long long n, int cols) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float z = x[i] + (bias ? bias[i % cols] : 0.f);
        y[i] = 0.5f * z * (1.f + erff(z * 0.70710678118654752f));
    }
}

// y = x + bias (bias broadcast over rows).
extern "C" __global__ void bias_add_f32(const float* x, const float* bias,
                                        float* y, long long n, int cols) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = x[i] + bias[i % cols];
}

// y = a + b (the residual connection).
extern "C" __global__ void add_f32(const float* a, const float* b,
                                   float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = a[i] + b[i];
}

extern "C" __global__ void f32_to_bf16_kernel(const float* x, u16* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = bf16_round(x[i]);
}

extern "C" __global__ void bf16_to_f32_kernel(const u16* x, float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = bf16_widen(x[i]);
}

// y = alpha·x.
extern "C" __global__ void scale_f32(const float* x, float alpha, float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = alpha * x[i];
}

// y = 1/(1 + e^−x).
extern "C" __global__ void sigmoid_f32(const float* x, float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = 1.f / (1.f + expf(-x[i]));
}

// Softmax over rows of `cols` values, one warp per row: max, then sum of exponentials, then scale.
extern "C" __global__ void softmax_f32(const float* x, float* y, int rows, int cols) {
    int warpsPerBlock = blockDim.x >> 5;
    int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + (long long)row * cols;
    float* yr = y + (long long)row * cols;
    float mx = __int_as_float(0xff800000);
    for (int c = lane; c < cols; c += 32) mx = fmaxf(mx, xr[c]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int c = lane; c < cols; c += 32) { float e = expf(xr[c] - mx); yr[c] = e; sum += e; }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = 1.f / sum;
    for (int c = lane; c < cols; c += 32) yr[c] *= inv;
}

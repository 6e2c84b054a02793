// Kernels of a BF16 residual stream (IComputeBackend.ResidualDType = BF16): LayerNorm reading BF16 rows
// and the mixed FP32/BF16 add of the positions. Arithmetic in FP32, as in elementwise.cu; BF16 values are
// widened on load and results rounded to nearest-even on store. No headers (NVRTC without include paths).

typedef unsigned short u16;

__device__ __forceinline__ u16 bf16_round(float f) {
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(r) : "f"(f));
    return r;
}

__device__ __forceinline__ float bf16_widen(u16 v) { return __uint_as_float(((unsigned)v) << 16); }

// LayerNorm over BF16 rows, biased variance, one warp per row, two passes (mean, then centred sum of
// squares), as layer_norm_f32. y (FP32) and y16 (BF16) are optional, at least one is given.
extern "C" __global__ void layer_norm_bf16(const u16* x, const float* gamma, const float* beta, float* y,
                                           u16* y16, int rows, int cols, float eps) {
    int warpsPerBlock = blockDim.x >> 5;
    int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const u16* xr = x + (long long)row * cols;
    float sum = 0.f;
    for (int c = lane; c < cols; c += 32) sum += bf16_widen(xr[c]);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float mean = sum / cols;
    float sq = 0.f;
    for (int c = lane; c < cols; c += 32) {
        float d = bf16_widen(xr[c]) - mean;
        sq += d * d;
    }
    for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    float rstd = rsqrtf(sq / cols + eps);
    for (int c = lane; c < cols; c += 32) {
        float v = (bf16_widen(xr[c]) - mean) * rstd * gamma[c] + beta[c];
        if (y) y[(long long)row * cols + c] = v;
        if (y16) y16[(long long)row * cols + c] = bf16_round(v);
    }
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
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i < per) {
            uint2 h = xr[lane + 32 * i];
            v[i].x = __uint_as_float(h.x << 16);
            v[i].y = __uint_as_float(h.x & 0xffff0000u);
            v[i].z = __uint_as_float(h.y << 16);
            v[i].w = __uint_as_float(h.y & 0xffff0000u);
            sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
        }
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float mean = sum / cols;
    float sq = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i < per) {
            float a = v[i].x - mean, b = v[i].y - mean, c = v[i].z - mean, d = v[i].w - mean;
            sq += (a * a + b * b) + (c * c + d * d);
        }
    }
    for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    float rstd = rsqrtf(sq / cols + eps);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        if (i < per) {
            int c4 = lane + 32 * i;
            float4 g = gamma[c4], bb = beta[c4], o;
            o.x = (v[i].x - mean) * rstd * g.x + bb.x;
            o.y = (v[i].y - mean) * rstd * g.y + bb.y;
            o.z = (v[i].z - mean) * rstd * g.z + bb.z;
            o.w = (v[i].w - mean) * rstd * g.w + bb.w;
            if (y) y[(long long)row * n4 + c4] = o;
            if (y16) {
                uint2 h;
                h.x = (unsigned)bf16_round(o.x) | ((unsigned)bf16_round(o.y) << 16);
                h.y = (unsigned)bf16_round(o.z) | ((unsigned)bf16_round(o.w) << 16);
                y16[(long long)row * n4 + c4] = h;
            }
        }
    }
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

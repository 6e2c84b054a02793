// Linear products with a small inner dimension (the input projection of a few sensor channels): cuBLAS
// tiles are far deeper than k, so a product of [m, 8]·[8, n] runs at a fraction of the memory rate.
// Here one thread computes one output in FP32 from FP32 operands (A's row is shared by a warp, B is a
// few KiB and stays in cache), so the cost is the write of C. No headers (NVRTC without include paths).

typedef unsigned short u16;

__device__ __forceinline__ u16 small_k_bf16_round(float f) {
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(r) : "f"(f));
    return r;
}

// C = alpha·A·Bᵀ + beta·C + bias; A [m, k], B [n, k] (a Linear weight), bias [n] or null, C [m, n] FP32
// (cBf16 = 0) or BF16 (cBf16 = 1, read widened and stored rounded to nearest even).
extern "C" __global__ void linear_small_k(const float* a, const float* b, const float* bias, void* c, int cBf16,
                                          float alpha, float beta, int m, int n, int k) {
    long long total = (long long)m * n;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        long long row = i / n;
        int col = (int)(i - row * n);
        const float* ar = a + row * k;
        const float* br = b + (long long)col * k;
        float acc = 0.f;
        for (int j = 0; j < k; ++j) acc += ar[j] * br[j];
        float v = alpha * acc + (bias ? bias[col] : 0.f);
        if (cBf16) {
            u16* cp = (u16*)c + i;
            if (beta != 0.f) v += beta * __uint_as_float(((unsigned)*cp) << 16);
            *cp = small_k_bf16_round(v);
        } else {
            float* cp = (float*)c + i;
            if (beta != 0.f) v += beta * *cp;
            *cp = v;
        }
    }
}

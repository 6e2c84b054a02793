// Linear products with a small inner dimension (the input projection of a few sensor channels): cuBLAS
// tiles are far deeper than k, so a product of [m, 8]·[8, n] runs at a fraction of the memory rate.
// Here a block of 256 threads computes a tile of SMALL_K_ROWS rows × 256 columns in FP32 from FP32
// operands: the tile's B rows (k ≤ 16 values each) are staged transposed in shared memory, its A rows
// likewise, so every thread reads B conflict-free and A as a broadcast, and writes C coalesced. The cost
// is the write of C.

#include "bf16.cuh"

#define SMALL_K_MAX 16
#define SMALL_K_ROWS 64
#define SMALL_K_COLS 256

// C = alpha·A·Bᵀ + beta·C + bias; A [m, k], B [n, k] (a Linear weight), bias [n] or null, k ≤ SMALL_K_MAX,
// C [m, n] FP32 (cBf16 = 0) or BF16 (cBf16 = 1, read widened and stored rounded to nearest even).
// Grid: (ceil(n / SMALL_K_COLS), ceil(m / SMALL_K_ROWS)), SMALL_K_COLS threads per block.
extern "C" __global__ void linear_small_k(const float* a, const float* b, const float* bias, void* c, int cBf16,
                                          float alpha, float beta, int m, int n, int k) {
    __shared__ float sb[SMALL_K_MAX][SMALL_K_COLS];
    __shared__ float sa[SMALL_K_ROWS][SMALL_K_MAX];
    int t = threadIdx.x;
    int col0 = blockIdx.x * SMALL_K_COLS;
    int row0 = blockIdx.y * SMALL_K_ROWS;
    int col = col0 + t;
    for (int j = 0; j < k; ++j) sb[j][t] = col < n ? b[(long long)col * k + j] : 0.f;
    for (int i = t; i < SMALL_K_ROWS * k; i += SMALL_K_COLS) {
        int r = i / k, j = i - r * k;
        sa[r][j] = row0 + r < m ? a[(long long)(row0 + r) * k + j] : 0.f;
    }
    __syncthreads();
    if (col >= n) return;
    float bv = bias ? bias[col] : 0.f;
    int rows = m - row0 < SMALL_K_ROWS ? m - row0 : SMALL_K_ROWS;
    for (int r = 0; r < rows; ++r) {
        float acc = 0.f;
        for (int j = 0; j < k; ++j) acc += sa[r][j] * sb[j][t];
        float v = alpha * acc + bv;
        long long i = (long long)(row0 + r) * n + col;
        if (cBf16) {
            u16* cp = (u16*)c + i;
            if (beta != 0.f) v += beta * bf16_widen(*cp);
            *cp = bf16_round(v);
        } else {
            float* cp = (float*)c + i;
            if (beta != 0.f) v += beta * *cp;
            *cp = v;
        }
    }
}

// A small model's pre-LN encoder layer in two launches instead of seven (docs/cuda-notes.md, "Fused small layers"):
// for sensor models (d_model ≤ 128, short windows) every op of a layer is a few microseconds of launch around well under a
// microsecond of work, so a lone window's forward is bound by the number of launches, not by arithmetic.
//   layer_norm_linear  y = LN(x)·Wᵀ + b per row: the layer's LN1 and q/k/v product (and the final LN and head).
//   attention_ffn      per query row: attention over the sequence's keys (dense or the CSR layout's key blocks, valid
//                      length), x += out-proj, LN2, x += FF2(GELU(FF1)) — every op after q/k/v is row-wise once the
//                      row's attention output is known, so a CTA takes ROWS query rows of one sequence through all of it.
// Arithmetic in FP32 from the FP32 weights, transposed once ([in, out], transpose_f32): thread c of an output row reads
// W[k, c] while its neighbours read W[k, c ± 1], one coalesced access per k for a warp, where the [out, in] layout made
// each lane read its own row (32 accesses per load: the first version, 70 µs a layer). The residual stream x is read and
// written as FP32 or BF16 (X_BF16) and stays FP32 inside the kernel, so it is rounded once per layer. Rows past a sequence's valid length are computed like any other
// (their inputs are zero), their attention output is zero, and the caller never reads them back.
//
// Knobs (-D): D (d_model, ≤ 128), H (heads; the backend takes D / H ≤ 32), DFF (≤ 512), X_BF16 (0/1); layer_norm_linear
// reads D and X_BF16 only. ROWS rows per CTA, 128 threads.

#include "layer_norm.cuh"

#ifndef D
#define D 32
#endif
#ifndef H
#define H 1
#endif
#ifndef DFF
#define DFF 1
#endif
#ifndef X_BF16
#define X_BF16 0
#endif
#define DH (D / H)
#define ROWS 8
#define THREADS 128
#if D % H != 0 || D > 128 || DFF > 512
#error fused_layer: D must divide into H heads, D <= 128, DFF <= 512
#endif

__device__ __forceinline__ float load_x(const void* x, long long i) {
#if X_BF16
    return bf16_widen(((const u16*)x)[i]);
#else
    return ((const float*)x)[i];
#endif
}

__device__ __forceinline__ void store_x(void* x, long long i, float v) {
#if X_BF16
    ((u16*)x)[i] = bf16_round(v);
#else
    ((float*)x)[i] = v;
#endif
}

__device__ __forceinline__ float gelu_exact(float z) { return 0.5f * z * (1.f + erff(z * 0.70710678118654752f)); }

// y[rows, cols] = x[cols, rows]ᵀ (a Linear weight [out, in] to [in, out], once per weight).
extern "C" __global__ void transpose_f32(const float* x, float* y, int rows, int cols) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (long long)rows * cols; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / cols, c = i - r * cols;
        y[c * rows + r] = x[i];
    }
}

// y[row, c] = LN(x[row, :])·wt[:, c] + b[c] for c < n; x [rows, D] (FP32 or BF16), wt [D, n] (a Linear weight transposed),
// y [rows, n] FP32. Grid: ceil(rows / ROWS), THREADS threads.
extern "C" __global__ void __launch_bounds__(THREADS) layer_norm_linear(const void* x, const float* gamma, const float* beta,
                                                                        const float* wt, const float* b, float* y,
                                                                        int rows, int n, float eps) {
    __shared__ float h[ROWS][D];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int row0 = blockIdx.x * ROWS;
    for (int r = warp; r < ROWS; r += THREADS / 32) {
        const long long row = row0 + r;
        if (row < rows) {
            layer_norm_row([&](int c) { return load_x(x, row * D + c); }, gamma, beta, h[r], nullptr, D, eps, lane);
        }
    }
    __syncthreads();
    for (int i = tid; i < ROWS * n; i += THREADS) {
        const int r = i / n, c = i - r * n;
        const long long row = row0 + r;
        if (row >= rows) continue;
        float acc = b[c];
#pragma unroll 8
        for (int k = 0; k < D; ++k) acc = fmaf(h[r][k], __ldg(wt + (long long)k * n + c), acc);
        y[row * n + c] = acc;
    }
}

struct FusedLayerParams {
    const float* qkv;            // [B·T, 3D]: q | k | v, heads side by side
    void* x;                     // [B·T, D] residual stream, read and written
    const int* seqLens;          // [B] or null (every sequence T long)
    const int* blockOffsets;     // CSR layout or null (dense)
    const int* blockIndices;
    const float *wo, *bo, *ln2g, *ln2b, *w1, *b1, *w2, *b2;   // weights transposed: wo [D, D], w1 [D, DFF], w2 [DFF, D]
    int seqLen, layoutHeads, blockSize, numQueryBlocks;
    float scale, eps;
};

// Grid: (ceil(T / ROWS), B), THREADS threads: rows t0 … t0 + ROWS − 1 of sequence b.
extern "C" __global__ void __launch_bounds__(THREADS) attention_ffn(const FusedLayerParams p) {
    __shared__ float a[ROWS][D];     // attention output
    __shared__ float xs[ROWS][D];    // residual rows, FP32
    __shared__ float h2[ROWS][D];    // LN2 output
    __shared__ float hid[ROWS][DFF]; // feed-forward hidden
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int b = blockIdx.y, t0 = blockIdx.x * ROWS, T = p.seqLen;
    const int len = p.seqLens ? p.seqLens[b] : T;
    const float NEG_INF = __int_as_float(0xff800000);
    const long long base = (long long)b * T;

    // Attention: one thread per (row, head), online softmax over the row's keys.
    for (int i = tid; i < ROWS * H; i += THREADS) {
        const int r = i / H, hd = i - r * H, t = t0 + r;
        if (t >= T) continue;
        float o[DH];
#pragma unroll
        for (int j = 0; j < DH; ++j) o[j] = 0.f;
        float l = 0.f;
        if (t < len) {
            float q[DH];
            const float* qr = p.qkv + (base + t) * (3 * D) + hd * DH;
#pragma unroll
            for (int j = 0; j < DH; ++j) q[j] = qr[j] * p.scale;
            float m = NEG_INF;
            int listStart = 0, listEnd = 1;
            if (p.blockOffsets) {
                const int qb = t / p.blockSize;
                const long long lr = ((long long)b * p.layoutHeads + (p.layoutHeads == 1 ? 0 : hd)) * p.numQueryBlocks + qb;
                listStart = p.blockOffsets[lr];
                listEnd = p.blockOffsets[lr + 1];
            }
            for (int e = listStart; e < listEnd; ++e) {
                const int k0 = p.blockOffsets ? p.blockIndices[e] * p.blockSize : 0;
                const int k1 = p.blockOffsets ? min(k0 + p.blockSize, len) : len;
                for (int kk = k0; kk < k1; ++kk) {
                    const float* kr = p.qkv + (base + kk) * (3 * D) + D + hd * DH;
                    float s = 0.f;
#pragma unroll
                    for (int j = 0; j < DH; ++j) s = fmaf(q[j], kr[j], s);
                    const float mNew = fmaxf(m, s);
                    const float c = __expf(m - mNew), e2 = __expf(s - mNew);
                    l = l * c + e2;
                    const float* vr = kr + D;
#pragma unroll
                    for (int j = 0; j < DH; ++j) o[j] = fmaf(e2, vr[j], o[j] * c);
                    m = mNew;
                }
            }
        }
        const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
        for (int j = 0; j < DH; ++j) a[r][hd * DH + j] = o[j] * inv;
    }
    __syncthreads();

    // x + out-proj(a) + bias, kept in FP32.
    for (int i = tid; i < ROWS * D; i += THREADS) {
        const int r = i / D, c = i - r * D, t = t0 + r;
        if (t >= T) continue;
        float acc = p.bo[c];
#pragma unroll 8
        for (int k = 0; k < D; ++k) acc = fmaf(a[r][k], __ldg(p.wo + k * D + c), acc);
        xs[r][c] = load_x(p.x, (base + t) * D + c) + acc;
    }
    __syncthreads();

    for (int r = warp; r < ROWS; r += THREADS / 32) {
        if (t0 + r < T) {
            layer_norm_row([&](int c) { return xs[r][c]; }, p.ln2g, p.ln2b, h2[r], nullptr, D, p.eps, lane);
        }
    }
    __syncthreads();

    for (int i = tid; i < ROWS * DFF; i += THREADS) {
        const int r = i / DFF, c = i - r * DFF;
        if (t0 + r >= T) continue;
        float acc = p.b1[c];
#pragma unroll 8
        for (int k = 0; k < D; ++k) acc = fmaf(h2[r][k], __ldg(p.w1 + k * DFF + c), acc);
        hid[r][c] = gelu_exact(acc);
    }
    __syncthreads();

    for (int i = tid; i < ROWS * D; i += THREADS) {
        const int r = i / D, c = i - r * D, t = t0 + r;
        if (t >= T) continue;
        float acc = p.b2[c];
#pragma unroll 8
        for (int k = 0; k < DFF; ++k) acc = fmaf(hid[r][k], __ldg(p.w2 + k * D + c), acc);
        store_x(p.x, (base + t) * D + c, xs[r][c] + acc);
    }
}

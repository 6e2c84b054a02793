// Attention for the shapes the tensor-core kernel (attention.cu) does not take: head dims that are not 16, 32, 64
// or 128 (small sensor models run 4 heads of 8) and layout blocks below 16 tokens. Such calls are tiny (a 64-step
// window is 64×64 pairs per head), so one thread owns one query row: the CTA's key block is staged in shared memory
// in FP32 and every thread walks it with an online softmax in FP32, exp2 domain. Same semantics as attention.cu:
// keys past a sequence's valid length never count, queries past it (or with no listed block) produce zeros.
//
// Compile-time knobs (-D): HEAD_DIM (1 … 64), ROWS (query rows per CTA: the layout's block size, or 64 dense),
// KEYS (keys staged per step; a listed block longer than KEYS takes several steps), USE_FP16 (0/1).

#ifndef HEAD_DIM
#define HEAD_DIM 8
#endif
#ifndef ROWS
#define ROWS 64
#endif
#ifndef KEYS
#define KEYS 64
#endif
#ifndef USE_FP16
#define USE_FP16 0
#endif

#include "attention_common.cuh"

__device__ __forceinline__ float to_float(u16 x) {
#if USE_FP16
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x));
    return f;
#else
    return __uint_as_float(((unsigned int)x) << 16);
#endif
}

__device__ __forceinline__ u16 from_float(float f) {
    u16 r;
#if USE_FP16
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(f));
#else
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
#endif
    return r;
}

extern "C" __global__ void __launch_bounds__(ROWS)
attention_small(const AttentionParams p) {
    __shared__ float ks[KEYS][HEAD_DIM];
    __shared__ float vs[KEYS][HEAD_DIM];
    const int tid = threadIdx.x;
    const int qBlock = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int len = p.seqLens ? p.seqLens[b] : p.seqLen;
    const int row = qBlock * ROWS + tid;

    const u16* kBase = p.k + b * p.kStrideB + h * p.kStrideH;
    const u16* vBase = p.v + b * p.vStrideB + h * p.vStrideH;

    // The key ranges this CTA visits: listed blocks (each in steps of KEYS keys), or every KEYS-long tile up to
    // the valid length.
    int listStart = 0, steps;
    const int stepsPerBlock = p.blockOffsets ? (p.blockSize + KEYS - 1) / KEYS : 1;
    if (p.blockOffsets) {
        int layoutRow = (b * p.layoutHeads + (p.layoutHeads == 1 ? 0 : h)) * p.numQueryBlocks + qBlock;
        listStart = p.blockOffsets[layoutRow];
        steps = (p.blockOffsets[layoutRow + 1] - listStart) * stepsPerBlock;
    } else {
        steps = (len + KEYS - 1) / KEYS;
    }

    float q[HEAD_DIM], acc[HEAD_DIM];
    const bool active = row < len;
    if (active) {
        const u16* qRow = p.q + b * p.qStrideB + h * p.qStrideH + (long long)row * p.qStrideT;
#pragma unroll
        for (int d = 0; d < HEAD_DIM; d++) q[d] = to_float(qRow[d]) * p.scaleLog2;
    }
#pragma unroll
    for (int d = 0; d < HEAD_DIM; d++) acc[d] = 0.f;
    const float negInf = __int_as_float(0xff800000);
    float m = negInf, l = 0.f;

    for (int step = 0; step < steps; step++) {
        int key0, count;
        if (p.blockOffsets) {
            const int chunk = (step % stepsPerBlock) * KEYS;
            key0 = p.blockIndices[listStart + step / stepsPerBlock] * p.blockSize + chunk;
            count = max(0, min(min(KEYS, p.blockSize - chunk), len - key0));
        } else {
            key0 = step * KEYS;
            count = max(0, min(KEYS, len - key0));
        }
        __syncthreads();   // every thread is done with the previous step's keys
        for (int e = tid; e < count * HEAD_DIM; e += ROWS) {
            const int key = e / HEAD_DIM, d = e % HEAD_DIM;
            ks[key][d] = to_float(kBase[(long long)(key0 + key) * p.kStrideT + d]);
            vs[key][d] = to_float(vBase[(long long)(key0 + key) * p.vStrideT + d]);
        }
        __syncthreads();
        if (!active || count == 0) continue;

        // One rescale per step: the step's maximum first, then the exponentials.
        float stepMax = negInf;
        for (int key = 0; key < count; key++) {
            float s = 0.f;
#pragma unroll
            for (int d = 0; d < HEAD_DIM; d++) s += q[d] * ks[key][d];
            stepMax = fmaxf(stepMax, s);
        }
        const float mNew = fmaxf(m, stepMax);
        const float correction = exp2f(m - mNew);
        l *= correction;
#pragma unroll
        for (int d = 0; d < HEAD_DIM; d++) acc[d] *= correction;
        for (int key = 0; key < count; key++) {
            float s = 0.f;
#pragma unroll
            for (int d = 0; d < HEAD_DIM; d++) s += q[d] * ks[key][d];
            const float pr = exp2f(s - mNew);
            l += pr;
#pragma unroll
            for (int d = 0; d < HEAD_DIM; d++) acc[d] += pr * vs[key][d];
        }
        m = mNew;
    }

    if (row < p.seqLen) {
        u16* oRow = p.o + b * p.oStrideB + h * p.oStrideH + (long long)row * p.oStrideT;
        const float inv = (active && l > 0.f) ? 1.f / l : 0.f;
#pragma unroll
        for (int d = 0; d < HEAD_DIM; d++) oRow[d] = from_float(acc[d] * inv);
    }
}

// BF16 as raw 16-bit words (NVRTC runs without the CUDA headers): widened exactly on load, rounded to nearest-even
// on store. The backend's embedded-source reader splices this file in place of a kernel's include line.
#ifndef SPARSEINFERENCE_BF16_CUH
#define SPARSEINFERENCE_BF16_CUH

typedef unsigned short u16;

__device__ __forceinline__ u16 bf16_round(float f) {
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(r) : "f"(f));
    return r;
}

__device__ __forceinline__ float bf16_widen(u16 v) { return __uint_as_float(((unsigned)v) << 16); }

__device__ __forceinline__ unsigned bf16_pair(float lo, float hi) { return (unsigned)bf16_round(lo) | ((unsigned)bf16_round(hi) << 16); }

#endif

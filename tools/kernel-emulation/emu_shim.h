#pragma once
// Emulates a CUDA block with std::threads: __syncthreads is a barrier over the block, warp shuffles go through a
// per-warp exchange buffer with its own barrier. Blocks run one after another.
#include <cmath>
#include <cstring>
#include <algorithm>
#include <barrier>
#include <thread>
#include <vector>
#include <functional>
#include <memory>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
struct dim3s { unsigned x = 0, y = 0, z = 0; };
struct float4 { float x, y, z, w; };
struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline thread_local dim3s threadIdx;
inline dim3s blockIdx, blockDim, gridDim;
struct Emu {
    static inline std::barrier<>* block = nullptr;
    static inline std::vector<std::unique_ptr<std::barrier<>>> warps;
    static inline float xchg[64][32];
};
inline void __syncthreads() { Emu::block->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    Emu::xchg[warp][lane] = v;
    Emu::warps[warp]->arrive_and_wait();
    float r = Emu::xchg[warp][lane ^ o];
    Emu::warps[warp]->arrive_and_wait();
    return r;
}
inline float __ldg(const float* p) { return *p; }
inline float __expf(float x) { return std::exp(x); }
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline float __uint_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
using std::min; using std::max;
// bf16 round to nearest even (what cvt.rn.bf16.f32 does)
inline unsigned short emu_bf16(float f) { unsigned u; std::memcpy(&u, &f, 4); return (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); }
#define asm(...) ((void)0)
#define volatile
// Shared memory: thread_local would give each thread its own; a plain static is one per kernel, shared by the block.
#define __shared__ static
template <class F> void launch(unsigned gx, unsigned gy, unsigned threads, F kernel) {
    gridDim = {gx, gy, 1}; blockDim = {threads, 1, 1};
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
            blockIdx = {bx, by, 0};
            std::barrier<> bar(threads); Emu::block = &bar;
            Emu::warps.clear();
            for (unsigned w = 0; w < (threads + 31) / 32; ++w) Emu::warps.push_back(std::make_unique<std::barrier<>>(32));
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < threads; ++t) ts.emplace_back([&, t] { threadIdx = {t, 0, 0}; kernel(); });
            for (auto& th : ts) th.join();
        }
}

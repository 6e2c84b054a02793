// Hopper attention forward (sm_90a): the same function, parameters and work list as attention.cu's
// attention_fwd, with the products on warpgroup tensor-core instructions (wgmma.mma_async) instead of
// mma.sync. One CTA computes one query tile of one (batch, head) as QUERY_TILE / 64 warpgroups of
// 64 query rows each; the warpgroups share the key/value tiles in shared memory.
//   S = Q·Kᵀ : wgmma m64nKEY_TILEk16, A = this warpgroup's Q rows, B = the K tile, both read by the
//             tensor cores straight from shared memory (K-major, 128-byte swizzle), 4 k-steps of 16.
//   O += P·V : wgmma m64n64k16, A = P from registers (the S accumulators rounded to 16 bits: two
//             adjacent n8 accumulator tiles form one k16 A fragment), B = the V tile, MN-major
//             (transposed) from shared memory, KEY_TILE/16 k-steps.
// Tiles are copied by every thread with cp.async into a ring of STAGES buffers; the writes reach the
// tensor cores' (async) proxy only after fence.proxy.async, before the barrier that publishes them.
//
// Shared-memory layout: every tile row is one head-dim-64 row of 128 bytes, 16-byte chunk c of row r at
// r·128 + ((c ^ (r & 7))·16), tile bases 1024-byte aligned: the wgmma 128-byte swizzle pattern, which
// keys on address bits, so the descriptors below need no base offset.
//
// Knobs (-D): QUERY_TILE (128, or 192 with PRODUCER), STAGES (K/V buffers in the ring), MIN_BLOCKS (CTAs per
// multiprocessor for the register allocation), USE_FP16 (0/1), and PRODUCER (0/1), which picks one of the two builds:
//   0: every warpgroup copies and computes (the block-sparse build: two stages, two CTAs per multiprocessor, so one
//      CTA's softmax runs while the other's products do; a block-sparse query block is 128 rows).
//   1: the warp-specialised build (FA3's layout, kernel at the end of the file): a producer warpgroup copies,
//      QUERY_TILE / 64 consumer warpgroups compute and take turns issuing their products; the products of tile j
//      (Q·Kᵀ) and of tile j−1 (P·V) are issued together, so the tensor cores run P·V while the warpgroup computes tile
//      j's softmax, and the exponentials overwrite the scores. QUERY_TILE 192 (three consumers) is the dense build: at
//      head dim 64 a warpgroup's softmax takes about as long as its products, so two consumers leave the tensor cores
//      idle.
// Key tiles are 128 keys (a layout's block size is a multiple of it).
// (The versions measured against these in docs/cuda-notes.md — 64-key tiles, exponentials as ex2.bf16x2 or on the FMA
// pipe, the overlapped loop without a producer — were removed with their knobs.)
// HEAD_DIM must be 64 (one swizzle atom per row).

// kernel-target: arch-specific
// (the backend compiles this source for sm_90a: wgmma exists on that target only)
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error attention_sm90.cu needs the sm_90a target
#endif

typedef unsigned long long u64;

#ifndef HEAD_DIM
#define HEAD_DIM 64
#endif
#if HEAD_DIM != 64
#error attention_sm90 supports head dim 64 only
#endif
#ifndef QUERY_TILE
#define QUERY_TILE 128
#endif
#ifndef STAGES
#define STAGES 2
#endif
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 1
#endif
#ifndef USE_FP16
#define USE_FP16 0
#endif
#ifndef PRODUCER
#define PRODUCER 0
#endif
#if PRODUCER && ((QUERY_TILE != 128 && QUERY_TILE != 192) || STAGES < 3 || MIN_BLOCKS != 1)
#error PRODUCER needs QUERY_TILE 128 or 192, STAGES >= 3 and MIN_BLOCKS 1
#endif
#if !PRODUCER && QUERY_TILE != 128
#error QUERY_TILE must be 128 (a block-sparse query block) without PRODUCER
#endif
#define KEY_TILE 128

#if USE_FP16
#define ELT "f16"
#else
#define ELT "bf16"
#endif

#define NWG (QUERY_TILE / 64)          // consumer warpgroups
#define NTHREADS ((NWG + PRODUCER) * 128)
#define CHUNKS 8                        // 16-byte chunks per 128-byte row
#define S_REGS (KEY_TILE / 2)           // S accumulators per thread (m64 × KEY_TILE over 128 threads)
#define S_TILES (KEY_TILE / 8)
#define PV_STEPS (KEY_TILE / 16)
#define TILE_BYTES (KEY_TILE * 128)
#define Q_BYTES (QUERY_TILE * 128)
// Prefetch distance: tiles in flight ahead of the one being computed.
#define AHEAD (PRODUCER ? STAGES - 2 : STAGES - 1)

#include "attention_common.cuh"

template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }

// Orders this thread's completed generic-proxy shared-memory writes (cp.async) before later
// async-proxy reads (wgmma operands); the barrier after it extends that to the other threads.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory"); }

// Keeps the compiler from moving accumulator reads/writes across the asynchronous products.
template <int N>
__device__ __forceinline__ void reg_fence(float (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i]) :: "memory");
}

// Shared-memory matrix descriptor, 128-byte swizzle: start address >> 4 in bits 0–13, leading byte
// offset >> 4 in 16–29, stride byte offset >> 4 in 32–45, swizzle mode 1 (128 B) in bits 62–63.
// K-major (Q, K): stride = 1024 bytes between 8-row groups; the leading offset is unused.
// MN-major (V, transposed): stride = 1024 bytes between 8-key groups along K; the leading offset
// (between 64-element groups along N) is unused at head dim 64.
__device__ __forceinline__ u64 make_desc(u32 addr) {
    return (u64)((addr & 0x3FFFF) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

// wgmma wrappers: d (accumulators) in and out, A and B as described above; scale-d 0 overwrites d.
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[64], unsigned long long descA, unsigned long long descB, int scaleD) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." ELT "." ELT " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(descA), "l"(descB), "r"(scaleD));
}

__device__ __forceinline__ void wgmma_ss_n64(float (&d)[32], unsigned long long descA, unsigned long long descB, int scaleD) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." ELT "." ELT " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(descA), "l"(descB), "r"(scaleD));
}

__device__ __forceinline__ void wgmma_rs_n64_tb(float (&d)[32], u32 a0, u32 a1, u32 a2, u32 a3, unsigned long long descB, int scaleD) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." ELT "." ELT " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(descB), "r"(scaleD));
}


// Rows [row0, row0+ROWS) of one (batch, head) slice into a swizzled tile; rows past `limit` are
// zero-filled (never read from memory).
template <int ROWS, int THREADS = NTHREADS>
__device__ __forceinline__ void load_tile(u32 tileAddr, const u16* base, long long strideT, int row0, int limit, int tid) {
#pragma unroll
    for (int c = tid; c < ROWS * CHUNKS; c += THREADS) {
        int r = c / CHUNKS, cc = c % CHUNKS;
        int gr = row0 + r;
        bool ok = gr < limit;
        const u16* src = base + (long long)(ok ? gr : 0) * strideT + cc * 8;
        cp_async16(tileAddr + r * 128 + ((cc ^ (r & 7)) << 4), src, ok ? 16 : 0);
    }
}

// S = Q·Kᵀ for this warpgroup's 64 rows and one key tile (issued, not waited for).
__device__ __forceinline__ void issue_qk(float (&s)[S_REGS], u64 descQ, u64 descK) {
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        // 16 elements = 32 bytes further along the swizzled row: +2 in the address field.
        wgmma_ss_n128(s, descQ + 2 * kk, descK + 2 * kk, kk);
    }
}

// O += P·V for one key tile (issued, not waited for); P packed as A fragments.
__device__ __forceinline__ void issue_pv(float (&o)[32], const u32 (&pa)[PV_STEPS][4], u64 descV) {
#pragma unroll
    for (int ks = 0; ks < PV_STEPS; ++ks) {
        // 16 keys = 16 rows of 128 bytes further: +2048 bytes, +128 in the address field.
        wgmma_rs_n64_tb(o, pa[ks][0], pa[ks][1], pa[ks][2], pa[ks][3], descV + 128 * ks, 1);
    }
}

// Online softmax of one tile's scores (log2 domain): updates the running max and sum, returns the
// factor the output accumulated so far must be scaled by, and packs P as the next product's A.
// The thread holds, for n8 tile j, keys 8j + 2·t4 + {0, 1} of rows g (s[4j], s[4j+1]) and g + 8
// (s[4j+2], s[4j+3]). MASKED: keys at or past `len` count as −inf (read, never written: the score
// registers stay untouched while another product may be in flight).
template <bool MASKED>
__device__ __forceinline__ void softmax_tile(const float (&s)[S_REGS], float (&pf)[S_REGS], u32 (&pa)[PV_STEPS][4], float (&mRow)[2], float (&lRow)[2],
                                             float (&corr)[2], float scaleLog2, int kStart, int len, int t4) {
    const float NEG_INF = __int_as_float(0xff800000);
    auto val = [&](int i) -> float {
        if (!MASKED) return s[i];
        int key = kStart + (i >> 2) * 8 + 2 * t4 + (i & 1);
        return key < len ? s[i] : NEG_INF;
    };
    float mx[2] = {NEG_INF, NEG_INF};
#pragma unroll
    for (int j = 0; j < S_TILES; ++j) {
        mx[0] = fmaxf(mx[0], fmaxf(val(4 * j), val(4 * j + 1)));
        mx[1] = fmaxf(mx[1], fmaxf(val(4 * j + 2), val(4 * j + 3)));
    }
    float mUse[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        float mNew = fmaxf(mRow[r], mx[r] * scaleLog2);
        mUse[r] = mNew == NEG_INF ? 0.f : mNew;
        corr[r] = fast_exp2(mRow[r] - mUse[r]);
        mRow[r] = mNew;
        lRow[r] *= corr[r];
    }
#pragma unroll
    for (int j = 0; j < S_TILES; ++j) {
        // n8 tiles 2ks and 2ks+1 are the k16 A fragment of step ks: a0/a1 rows g/g+8 keys 0–7,
        // a2/a3 rows g/g+8 keys 8–15 (the mma.sync m16n8k16 A layout, per warp).
        float p0 = fast_exp2(fmaf(val(4 * j), scaleLog2, -mUse[0]));
        float p1 = fast_exp2(fmaf(val(4 * j + 1), scaleLog2, -mUse[0]));
        float p2 = fast_exp2(fmaf(val(4 * j + 2), scaleLog2, -mUse[1]));
        float p3 = fast_exp2(fmaf(val(4 * j + 3), scaleLog2, -mUse[1]));
        lRow[0] += p0 + p1;
        lRow[1] += p2 + p3;
#if PRODUCER
        pf[4 * j] = p0; pf[4 * j + 1] = p1; pf[4 * j + 2] = p2; pf[4 * j + 3] = p3;
#else
        // Packed at once: the floats die here, which the 128-register budget of two CTAs per SM needs.
        pa[j >> 1][(j & 1) * 2] = pack2(p0, p1);
        pa[j >> 1][(j & 1) * 2 + 1] = pack2(p2, p3);
#endif
    }
}

// Only the tile holding the valid length's end pays for the mask. With PRODUCER, P comes out as floats
// (pf) and pack_p turns it into A fragments only after the product that reads the previous fragments
// has retired, so no wgmma input is written while a wgmma is in flight; otherwise P is packed at once.
__device__ __forceinline__ void softmax_any(const float (&s)[S_REGS], float (&pf)[S_REGS], u32 (&pa)[PV_STEPS][4], float (&mRow)[2], float (&lRow)[2],
                                            float (&corr)[2], float scaleLog2, int kStart, int len, int t4) {
    if (kStart + KEY_TILE > len) softmax_tile<true>(s, pf, pa, mRow, lRow, corr, scaleLog2, kStart, len, t4);
    else softmax_tile<false>(s, pf, pa, mRow, lRow, corr, scaleLog2, kStart, len, t4);
}

// n8 tiles 2ks and 2ks+1 are the k16 A fragment of step ks: a0/a1 rows g/g+8 keys 0–7, a2/a3 rows
// g/g+8 keys 8–15 (the mma.sync m16n8k16 A layout, per warp).
__device__ __forceinline__ void pack_p(const float (&pf)[S_REGS], u32 (&pa)[PV_STEPS][4]) {
#if PRODUCER
#pragma unroll
    for (int j = 0; j < S_TILES; ++j) {
        pa[j >> 1][(j & 1) * 2] = pack2(pf[4 * j], pf[4 * j + 1]);
        pa[j >> 1][(j & 1) * 2 + 1] = pack2(pf[4 * j + 2], pf[4 * j + 3]);
    }
#endif
}

__device__ __forceinline__ void scale_o(float (&o)[32], const float (&corr)[2]) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        o[4 * i] *= corr[0]; o[4 * i + 1] *= corr[0];
        o[4 * i + 2] *= corr[1]; o[4 * i + 3] *= corr[1];
    }
}

// A consumer warpgroup's 64 rows at the end: a part of a split row leaves its unnormalised output, running max and
// sum for attention_combine; a whole row is normalised and stored as 16-bit values (zeros past the valid length).
__device__ __forceinline__ void store_rows(const AttentionParams& p, const float (&o)[32], const float (&mRow)[2],
                                           const float (&lRow)[2], int slot, int rowBase, int q0, int len, u16* oBase, int t4) {
    if (slot >= 0) {
        float* po = p.partialO + (long long)slot * QUERY_TILE * HEAD_DIM;
        float* pml = p.partialML + (long long)slot * QUERY_TILE * 2;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float l = lRow[r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            int lr = rowBase + r * 8;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                *(float2*)(po + lr * HEAD_DIM + i * 8 + 2 * t4) = make_float2(o[4 * i + 2 * r], o[4 * i + 2 * r + 1]);
            }
            if (t4 == 0) { pml[2 * lr] = mRow[r]; pml[2 * lr + 1] = l; }
        }
        return;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float l = lRow[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        float inv = l > 0.f ? 1.f / l : 0.f;
        int row = q0 + rowBase + r * 8;
        if (row < p.seqLen) {
            bool valid = row < len;
            u16* dst = oBase + (long long)row * p.oStrideT + 2 * t4;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                u32 v = valid ? pack2(o[4 * i + 2 * r] * inv, o[4 * i + 2 * r + 1] * inv) : 0u;
                *(u32*)(dst + i * 8) = v;
            }
        }
    }
}

#if !PRODUCER
extern "C" __global__ void __launch_bounds__(NTHREADS, MIN_BLOCKS)
attention_fwd_sm90(const AttentionParams p) {
    extern __shared__ __align__(1024) unsigned char smem[];
    const int tid = threadIdx.x, lane = tid & 31;
    const int wg = tid >> 7, warpInWg = (tid >> 5) & 3;
    AttentionTask task = attention_task(p, QUERY_TILE, KEY_TILE);
    if (zero_if_empty(p, task, QUERY_TILE, tid, NTHREADS)) return;
    const int len = task.len, q0 = task.q0, listStart = task.listStart, slot = task.slot;
    const int numTiles = task.numTiles, tilesPerBlock = task.tilesPerBlock;
    const u16* qBase = task.qBase; const u16* kBase = task.kBase; const u16* vBase = task.vBase; u16* oBase = task.oBase;

    // The dynamic shared window is 1024-byte aligned here by rounding up (the host adds 1 KiB).
    const u32 sQ = (smem_addr(smem) + 1023u) & ~1023u;
    const u32 sK0 = sQ + Q_BYTES;
    const u32 sV0 = sK0 + STAGES * TILE_BYTES;

    auto tileStart = [&](int it) -> int {
        if (!p.blockOffsets) return it * KEY_TILE;
        int kb = p.blockIndices[listStart + it / tilesPerBlock];
        return kb * p.blockSize + (it % tilesPerBlock) * KEY_TILE;
    };

    // Key-tile starts in a register ring, ring[i] = start of tile it + i: each block index is read from
    // global memory one tile before its load is issued, so the read's latency is off the critical path.
    int ring[AHEAD + 1];
#pragma unroll
    for (int i = 0; i <= AHEAD; ++i) ring[i] = i < numTiles ? tileStart(i) : 0;

    // Prologue: Q with tile 0, then tiles 1 … AHEAD−1; one commit group per tile, empty ones included,
    // so that "tile it has landed" is always cp.async.wait_group AHEAD−1.
    load_tile<QUERY_TILE>(sQ, qBase, p.qStrideT, q0, p.seqLen, tid);
#pragma unroll
    for (int t = 0; t < AHEAD; ++t) {
        if (t < numTiles) {
            int k0 = ring[t];
            load_tile<KEY_TILE>(sK0 + t * TILE_BYTES, kBase, p.kStrideT, k0, p.seqLen, tid);
            load_tile<KEY_TILE>(sV0 + t * TILE_BYTES, vBase, p.vStrideT, k0, p.seqLen, tid);
        }
        cp_async_commit();
    }

#define SHIFT_RING(next) do { _Pragma("unroll") for (int i_ = 0; i_ < AHEAD; ++i_) ring[i_] = ring[i_ + 1]; ring[AHEAD] = (next); } while (0)
    const int t4 = lane & 3;
    const u64 descQ = make_desc(sQ + wg * 64 * 128);
    float o[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i] = 0.f;
    const float NEG_INF = __int_as_float(0xff800000);
    float mRow[2] = {NEG_INF, NEG_INF}, lRow[2] = {0.f, 0.f};
    float s[S_REGS], pf[S_REGS];
    u32 pa[PV_STEPS][4];
    float corr[2];

    for (int it = 0; it < numTiles; ++it) {
        const int fetched = it + AHEAD + 1 < numTiles ? tileStart(it + AHEAD + 1) : 0;
        cp_async_wait<AHEAD - 1>();
        fence_proxy_async();
        __syncthreads();   // tile it visible to every warpgroup; every thread is past iteration it−1
        {
            int t = it + AHEAD;
            if (t < numTiles) {
                int kn = ring[AHEAD];
                int nb = t % STAGES;
                load_tile<KEY_TILE>(sK0 + nb * TILE_BYTES, kBase, p.kStrideT, kn, p.seqLen, tid);
                load_tile<KEY_TILE>(sV0 + nb * TILE_BYTES, vBase, p.vStrideT, kn, p.seqLen, tid);
            }
            cp_async_commit();
        }
        const int buf = it % STAGES;
        wgmma_fence();
        issue_qk(s, descQ, make_desc(sK0 + buf * TILE_BYTES));
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence(s);
        softmax_any(s, pf, pa, mRow, lRow, corr, p.scaleLog2, ring[0], len, t4);
        pack_p(pf, pa);
        scale_o(o, corr);
        reg_fence(o);
        SHIFT_RING(fetched);
        wgmma_fence();
        issue_pv(o, pa, make_desc(sV0 + buf * TILE_BYTES));
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence(o);
    }

    const int g = lane >> 2;
    const int rowBase = wg * 64 + warpInWg * 16 + g;
    store_rows(p, o, mRow, lRow, slot, rowBase, q0, len, oBase, t4);
}
#endif  // !PRODUCER

#if PRODUCER
__device__ __forceinline__ void mbar_init(u32 addr, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(addr), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_wait(u32 addr, int parity) {
    u32 done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(addr), "r"(parity) : "memory");
    } while (!done);
}
__device__ __forceinline__ void mbar_arrive(u32 addr) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" :: "r"(addr) : "memory");
}
// Arrives on the barrier once every cp.async this thread issued before has landed (the barrier's count
// includes this arrival: noinc).
__device__ __forceinline__ void cp_async_mbar_arrive(u32 addr) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" :: "r"(addr) : "memory");
}
__device__ __forceinline__ void named_sync(int id) { asm volatile("bar.sync %0, 256;\n" :: "r"(id) : "memory"); }
__device__ __forceinline__ void named_arrive(int id) { asm volatile("bar.arrive %0, 256;\n" :: "r"(id) : "memory"); }

// Warp-specialised form (FA3's layout): warpgroup 0 only copies (cp.async into a ring of STAGES buffers, each
// completing on a "full" mbarrier; it refills a buffer once both consumers arrived on its "empty" mbarrier) and
// gives its registers to warpgroups 1–2, which compute 64 query rows each with the overlapped loop and take
// turns issuing their products (named barriers 1 and 2), so one warpgroup's softmax runs under the other's products.
extern "C" __global__ void __launch_bounds__(NTHREADS, 1)
attention_fwd_sm90(const AttentionParams p) {
    extern __shared__ __align__(1024) unsigned char smem[];
    const int tid = threadIdx.x, lane = tid & 31;
    const int wg = tid >> 7, warpInWg = (tid >> 5) & 3;
    AttentionTask task = attention_task(p, QUERY_TILE, KEY_TILE);
    if (zero_if_empty(p, task, QUERY_TILE, tid, NTHREADS)) return;
    const int len = task.len, q0 = task.q0, listStart = task.listStart, slot = task.slot;
    const int numTiles = task.numTiles, tilesPerBlock = task.tilesPerBlock;
    const u16* qBase = task.qBase; const u16* kBase = task.kBase; const u16* vBase = task.vBase; u16* oBase = task.oBase;

    const u32 sQ = (smem_addr(smem) + 1023u) & ~1023u;
    const u32 sK0 = sQ + Q_BYTES;
    const u32 sV0 = sK0 + STAGES * TILE_BYTES;
    const u32 sBar = sV0 + STAGES * TILE_BYTES;   // full[STAGES], empty[STAGES], Q: 8 bytes each
    auto fullBar = [&](int i) { return sBar + 8u * i; };
    auto emptyBar = [&](int i) { return sBar + 8u * (STAGES + i); };
    const u32 qBar = sBar + 16u * STAGES;
    if (tid == 0) {
        for (int i = 0; i < STAGES; ++i) { mbar_init(fullBar(i), 128); mbar_init(emptyBar(i), NWG * 128); }
        mbar_init(qBar, 128);
    }
    __syncthreads();

    auto tileStart = [&](int it) -> int {
        if (!p.blockOffsets) return it * KEY_TILE;
        int kb = p.blockIndices[listStart + it / tilesPerBlock];
        return kb * p.blockSize + (it % tilesPerBlock) * KEY_TILE;
    };

    if (wg == 0) {
        // Producer.
    #if NWG == 3
    asm volatile("setmaxnreg.dec.sync.aligned.u32 32;\n" ::: "memory");
#else
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
#endif
        load_tile<QUERY_TILE, 128>(sQ, qBase, p.qStrideT, q0, p.seqLen, tid);
        cp_async_mbar_arrive(qBar);
        for (int t = 0; t < numTiles; ++t) {
            const int stage = t % STAGES;
            if (t >= STAGES) mbar_wait(emptyBar(stage), ((t / STAGES) + 1) & 1);
            const int k0 = tileStart(t);
            load_tile<KEY_TILE, 128>(sK0 + stage * TILE_BYTES, kBase, p.kStrideT, k0, p.seqLen, tid);
            load_tile<KEY_TILE, 128>(sV0 + stage * TILE_BYTES, vBase, p.vStrideT, k0, p.seqLen, tid);
            cp_async_mbar_arrive(fullBar(stage));
        }
        cp_async_wait<0>();
        return;
    }

#if NWG == 3
    asm volatile("setmaxnreg.inc.sync.aligned.u32 160;\n" ::: "memory");
#else
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
#endif
    const int cw = wg - 1;                 // consumer warpgroup: rows cw·64 …
    // Turns go round the consumers: each waits on its own named barrier, then arrives on the next one's.
    const int myTurn = 1 + cw, otherTurn = 1 + (cw + 1) % NWG;
    const int t4 = lane & 3;
    const u64 descQ = make_desc(sQ + cw * 64 * 128);
    float o[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i] = 0.f;
    const float NEG_INF = __int_as_float(0xff800000);
    float mRow[2] = {NEG_INF, NEG_INF}, lRow[2] = {0.f, 0.f};
    float s[S_REGS];
    float (&pf)[S_REGS] = s;               // exponentials written over the scores (registers for 3 consumers)
    u32 pa[PV_STEPS][4];
    float corr[2];

    mbar_wait(qBar, 0);
    if (cw == NWG - 1) named_arrive(1);    // consumer 0 issues first
    {
        mbar_wait(fullBar(0), 0);
        fence_proxy_async();
        named_sync(myTurn);
        wgmma_fence();
        issue_qk(s, descQ, make_desc(sK0));
        wgmma_commit();
        named_arrive(otherTurn);
        wgmma_wait<0>();
        softmax_any(s, pf, pa, mRow, lRow, corr, p.scaleLog2, tileStart(0), len, t4);
        pack_p(pf, pa);
    }
    for (int it = 1; it < numTiles; ++it) {
        const int stage = it % STAGES, prev = (it - 1) % STAGES;
        const int kStart = tileStart(it);
        mbar_wait(fullBar(stage), (it / STAGES) & 1);
        fence_proxy_async();
        named_sync(myTurn);
        wgmma_fence();
        issue_qk(s, descQ, make_desc(sK0 + stage * TILE_BYTES));
        wgmma_commit();
        issue_pv(o, pa, make_desc(sV0 + prev * TILE_BYTES));
        wgmma_commit();
        named_arrive(otherTurn);
        wgmma_wait<1>();
        softmax_any(s, pf, pa, mRow, lRow, corr, p.scaleLog2, kStart, len, t4);
        wgmma_wait<0>();
        mbar_arrive(emptyBar(prev));       // tile it−1 fully read (K by its scores, V by this P·V)
        reg_fence(o);
        scale_o(o, corr);
        pack_p(pf, pa);
    }
    {
        named_sync(myTurn);
        wgmma_fence();
        issue_pv(o, pa, make_desc(sV0 + ((numTiles - 1) % STAGES) * TILE_BYTES));
        wgmma_commit();
        if (cw != NWG - 1) named_arrive(otherTurn);  // the last consumer's last turn ends the round: every arrival has its sync
        wgmma_wait<0>();
        reg_fence(o);
    }

    const int g = lane >> 2;
    const int rowBase = cw * 64 + warpInWg * 16 + g;
    store_rows(p, o, mRow, lRow, slot, rowBase, q0, len, oBase, t4);
}
#endif  // PRODUCER

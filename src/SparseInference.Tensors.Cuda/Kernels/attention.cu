// Flash-style attention forward: BF16 (or FP16) inputs, FP32 accumulation, tensor cores through
// mma.sync.m16n8k16, online softmax. One CTA computes one query tile of one (batch, head).
// Dense: the CTA walks every key tile up to the sequence's valid length.
// Block-sparse: the CTA walks the key blocks listed for its (batch, head, query block) in a CSR
// layout (offsets + indices); the query tile then equals the layout's block size.
// Split rows: with a work list, each CTA takes a range of one row's key blocks; a row much longer
// than the others (BigBird's global query blocks) is spread over several CTAs that write unnormalised
// partial results, and attention_combine merges them, so one long row no longer sets the run time.
//
// Compiled by NVRTC without include paths, so no system headers (attention_common.cuh is spliced in by the backend's
// source reader): BF16 is handled as raw 16-bit words and
// everything Hopper-specific goes through inline PTX.
//
// Compile-time knobs (-D): HEAD_DIM (16, 32, 64, 128), QUERY_TILE (16 … 128), KEY_TILE (16, 32, 64;
// a layout's block size must be a multiple of it), USE_FP16 (0/1),
// M_TILES (1 or 2): 16-row tiles per warp. Two halve the shared-memory reads per tensor-core
// operation (each K/V fragment feeds two products), the limit of the one-tile version.
// K/V tiles are double-buffered: the copy of tile j+1 runs while tile j is computed.
// (The versions measured against this one in docs/cuda-notes.md — exponentials as ex2.bf16x2, three stages, a
// software-pipelined loop, Q re-read from shared memory — were removed with their knobs.)

#ifndef HEAD_DIM
#define HEAD_DIM 64
#endif
#ifndef QUERY_TILE
#define QUERY_TILE 128
#endif
#ifndef USE_FP16
#define USE_FP16 0
#endif
#ifndef M_TILES
#define M_TILES 2
#endif
#ifndef KEY_TILE
#define KEY_TILE 64
#endif
#define WARP_ROWS (16 * M_TILES)
#define NWARPS (QUERY_TILE / WARP_ROWS)
#define NTHREADS (NWARPS * 32)
#define CHUNKS (HEAD_DIM / 8)          // 16-byte chunks per row
#define QK_STEPS (HEAD_DIM / 16)       // k-steps of Q·Kᵀ
#define S_TILES (KEY_TILE / 8)         // n-tiles of S per warp
#define O_TILES (HEAD_DIM / 8)         // n-tiles of O per warp
#define PV_STEPS (KEY_TILE / 16)       // k-steps of P·V

#include "attention_common.cuh"

// Swizzled 16-byte chunk index inside a [rows][CHUNKS] tile: ldmatrix reads of 8 rows at one
// logical chunk hit 8 different bank groups.
__device__ __forceinline__ int swz(int row, int c) {
#if CHUNKS >= 8
    return row * CHUNKS + (c ^ (row & 7));
#else
    int lin = row * CHUNKS + c;
    return lin ^ ((lin >> 3) & 7);
#endif
}

__device__ __forceinline__ void cp_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

__device__ __forceinline__ void ldsm_x4(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

__device__ __forceinline__ void mma16816(float* d, const u32* a, u32 b0, u32 b1) {
#if USE_FP16
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
#endif
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Loads rows [row0, row0+rows) of one (batch, head) slice into a swizzled tile; rows past
// `limit` are zero-filled (never read from memory).
template <int ROWS>
__device__ __forceinline__ void load_tile(u32 tileAddr, const u16* base, long long strideT, int row0, int limit, int tid) {
#pragma unroll
    for (int c = tid; c < ROWS * CHUNKS; c += NTHREADS) {
        int r = c / CHUNKS, cc = c % CHUNKS;
        int gr = row0 + r;
        bool ok = gr < limit;
        const u16* src = base + (long long)(ok ? gr : 0) * strideT + cc * 8;
        cp_async16(tileAddr + swz(r, cc) * 16, src, ok ? 16 : 0);
    }
}


extern "C" __global__ void __launch_bounds__(NTHREADS, 1)
attention_fwd(const AttentionParams p) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    AttentionTask task = attention_task(p, QUERY_TILE, KEY_TILE);
    if (zero_if_empty(p, task, QUERY_TILE, tid, NTHREADS)) return;
    const int len = task.len, q0 = task.q0, listStart = task.listStart, slot = task.slot;
    const int numTiles = task.numTiles, tilesPerBlock = task.tilesPerBlock;
    const u16* qBase = task.qBase; const u16* kBase = task.kBase; const u16* vBase = task.vBase; u16* oBase = task.oBase;

    const u32 sQ = smem_addr(smem);
    const int tileBytes = KEY_TILE * HEAD_DIM * 2;
    const u32 sK0 = sQ + QUERY_TILE * HEAD_DIM * 2;
    const u32 sV0 = sK0 + 2 * tileBytes;

    load_tile<QUERY_TILE>(sQ, qBase, p.qStrideT, q0, p.seqLen, tid);

    auto tileStart = [&](int it) -> int {
        if (!p.blockOffsets) return it * KEY_TILE;
        int kb = p.blockIndices[listStart + it / tilesPerBlock];
        return kb * p.blockSize + (it % tilesPerBlock) * KEY_TILE;
    };

    {
        int k0 = tileStart(0);
        load_tile<KEY_TILE>(sK0, kBase, p.kStrideT, k0, p.seqLen, tid);
        load_tile<KEY_TILE>(sV0, vBase, p.vStrideT, k0, p.seqLen, tid);
        cp_async_commit();
    }

    const int g = lane >> 2, t4 = lane & 3;
    u32 qf[M_TILES][QK_STEPS][4];
    float o[M_TILES][O_TILES][4];
#pragma unroll
    for (int m = 0; m < M_TILES; ++m)
#pragma unroll
        for (int i = 0; i < O_TILES; ++i) { o[m][i][0] = o[m][i][1] = o[m][i][2] = o[m][i][3] = 0.f; }
    const float NEG_INF = __int_as_float(0xff800000);
    float mRow[M_TILES][2], lRow[M_TILES][2];
#pragma unroll
    for (int m = 0; m < M_TILES; ++m) { mRow[m][0] = mRow[m][1] = NEG_INF; lRow[m][0] = lRow[m][1] = 0.f; }

    for (int it = 0; it < numTiles; ++it) {
        const int kStart = tileStart(it);
        const int buf = it & 1;
        if (it + 1 < numTiles) {
            int kn = tileStart(it + 1);
            load_tile<KEY_TILE>(sK0 + (buf ^ 1) * tileBytes, kBase, p.kStrideT, kn, p.seqLen, tid);
            load_tile<KEY_TILE>(sV0 + (buf ^ 1) * tileBytes, vBase, p.vStrideT, kn, p.seqLen, tid);
            cp_async_commit();
            cp_async_wait_all_but_one();
        } else {
            cp_async_wait_all();
        }
        __syncthreads();

        if (it == 0) {
#pragma unroll
            for (int m = 0; m < M_TILES; ++m)
#pragma unroll
                for (int kk = 0; kk < QK_STEPS; ++kk) {
                    int r = warp * WARP_ROWS + m * 16 + (lane & 15), c = kk * 2 + (lane >> 4);
                    ldsm_x4(sQ + swz(r, c) * 16, qf[m][kk][0], qf[m][kk][1], qf[m][kk][2], qf[m][kk][3]);
                }
        }

        const u32 sK = sK0 + buf * tileBytes, sV = sV0 + buf * tileBytes;

        // S = Q·Kᵀ for this warp's rows × 64 keys; each K fragment feeds every m-tile.
        float s[M_TILES][S_TILES][4];
#pragma unroll
        for (int m = 0; m < M_TILES; ++m)
#pragma unroll
            for (int j = 0; j < S_TILES; ++j) { s[m][j][0] = s[m][j][1] = s[m][j][2] = s[m][j][3] = 0.f; }
#pragma unroll
        for (int kk = 0; kk < QK_STEPS; ++kk) {
            u32 qa[M_TILES][4];
#pragma unroll
            for (int m = 0; m < M_TILES; ++m) {
                qa[m][0] = qf[m][kk][0]; qa[m][1] = qf[m][kk][1]; qa[m][2] = qf[m][kk][2]; qa[m][3] = qf[m][kk][3];
            }
#pragma unroll
            for (int j = 0; j < S_TILES; j += 2) {
                int mi = lane >> 3;
                int key = j * 8 + (mi >> 1) * 8 + (lane & 7);
                int c = kk * 2 + (mi & 1);
                u32 b0, b1, b2, b3;
                ldsm_x4(sK + swz(key, c) * 16, b0, b1, b2, b3);
#pragma unroll
                for (int m = 0; m < M_TILES; ++m) {
                    mma16816(s[m][j], qa[m], b0, b1);
                    mma16816(s[m][j + 1], qa[m], b2, b3);
                }
            }
        }

        // Keys past the valid length never count.
        if (kStart + KEY_TILE > len) {
#pragma unroll
            for (int j = 0; j < S_TILES; ++j) {
                int key = kStart + j * 8 + 2 * t4;
#pragma unroll
                for (int m = 0; m < M_TILES; ++m) {
                    if (key >= len) { s[m][j][0] = NEG_INF; s[m][j][2] = NEG_INF; }
                    if (key + 1 >= len) { s[m][j][1] = NEG_INF; s[m][j][3] = NEG_INF; }
                }
            }
        }

        // Online softmax in the log2 domain; each thread holds rows g and g+8 of each m-tile.
#pragma unroll
        for (int m = 0; m < M_TILES; ++m) {
            float mx[2] = {NEG_INF, NEG_INF};
#pragma unroll
            for (int j = 0; j < S_TILES; ++j) {
                mx[0] = fmaxf(mx[0], fmaxf(s[m][j][0], s[m][j][1]));
                mx[1] = fmaxf(mx[1], fmaxf(s[m][j][2], s[m][j][3]));
            }
            float corr[2], mUse[2];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                float mNew = fmaxf(mRow[m][r], mx[r] * p.scaleLog2);
                mUse[r] = mNew == NEG_INF ? 0.f : mNew;
                corr[r] = fast_exp2(mRow[m][r] - mUse[r]);
                mRow[m][r] = mNew;
                lRow[m][r] *= corr[r];
            }
#pragma unroll
            for (int j = 0; j < S_TILES; ++j) {
                s[m][j][0] = fast_exp2(s[m][j][0] * p.scaleLog2 - mUse[0]);
                s[m][j][1] = fast_exp2(s[m][j][1] * p.scaleLog2 - mUse[0]);
                s[m][j][2] = fast_exp2(s[m][j][2] * p.scaleLog2 - mUse[1]);
                s[m][j][3] = fast_exp2(s[m][j][3] * p.scaleLog2 - mUse[1]);
                lRow[m][0] += s[m][j][0] + s[m][j][1];
                lRow[m][1] += s[m][j][2] + s[m][j][3];
            }
#pragma unroll
            for (int i = 0; i < O_TILES; ++i) {
                o[m][i][0] *= corr[0]; o[m][i][1] *= corr[0];
                o[m][i][2] *= corr[1]; o[m][i][3] *= corr[1];
            }
        }

        // O += P·V; the S accumulator layout is the A-fragment layout of the next product.
#pragma unroll
        for (int ks = 0; ks < PV_STEPS; ++ks) {
            u32 a[M_TILES][4];
#pragma unroll
            for (int m = 0; m < M_TILES; ++m) {
                a[m][0] = pack2(s[m][2 * ks][0], s[m][2 * ks][1]);
                a[m][1] = pack2(s[m][2 * ks][2], s[m][2 * ks][3]);
                a[m][2] = pack2(s[m][2 * ks + 1][0], s[m][2 * ks + 1][1]);
                a[m][3] = pack2(s[m][2 * ks + 1][2], s[m][2 * ks + 1][3]);
            }
#pragma unroll
            for (int nd = 0; nd < O_TILES; nd += 2) {
                int mi = lane >> 3;
                int key = ks * 16 + (mi & 1) * 8 + (lane & 7);
                int c = nd + (mi >> 1);
                u32 b0, b1, b2, b3;
                ldsm_x4_t(sV + swz(key, c) * 16, b0, b1, b2, b3);
#pragma unroll
                for (int m = 0; m < M_TILES; ++m) {
                    mma16816(o[m][nd], a[m], b0, b1);
                    mma16816(o[m][nd + 1], a[m], b2, b3);
                }
            }
        }
        __syncthreads();
    }


    if (slot >= 0) {
        // A part of a split row: unnormalised output, running max and sum, for attention_combine.
        float* po = p.partialO + (long long)slot * QUERY_TILE * HEAD_DIM;
        float* pml = p.partialML + (long long)slot * QUERY_TILE * 2;
#pragma unroll
        for (int m = 0; m < M_TILES; ++m)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float l = lRow[m][r];
                l += __shfl_xor_sync(0xffffffffu, l, 1);
                l += __shfl_xor_sync(0xffffffffu, l, 2);
                int lr = warp * WARP_ROWS + m * 16 + g + r * 8;
#pragma unroll
                for (int i = 0; i < O_TILES; ++i) {
                    po[lr * HEAD_DIM + i * 8 + 2 * t4] = o[m][i][2 * r];
                    po[lr * HEAD_DIM + i * 8 + 2 * t4 + 1] = o[m][i][2 * r + 1];
                }
                if (t4 == 0) { pml[2 * lr] = mRow[m][r]; pml[2 * lr + 1] = l; }
            }
        return;
    }

    // Normalise and store; each quad owns two rows of each m-tile.
#pragma unroll
    for (int m = 0; m < M_TILES; ++m)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float l = lRow[m][r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            float inv = l > 0.f ? 1.f / l : 0.f;
            int row = q0 + warp * WARP_ROWS + m * 16 + g + r * 8;
            if (row < p.seqLen) {
                bool valid = row < len;
                u16* dst = oBase + (long long)row * p.oStrideT + 2 * t4;
#pragma unroll
                for (int i = 0; i < O_TILES; ++i) {
                    u32 v = valid ? pack2(o[m][i][2 * r] * inv, o[m][i][2 * r + 1] * inv) : 0u;
                    *(u32*)(dst + i * 8) = v;
                }
            }
        }
}

// Merges the parts of split rows: work [numRows][3] = ((b·heads + h)·numQueryBlocks + qb, first slot,
// slot count). One CTA per split row; out = Σ o_i·2^(m_i − m) / Σ l_i·2^(m_i − m), m = max m_i.
extern "C" __global__ void attention_combine(const AttentionParams p, const int* rows) {
    const int* w = rows + 3 * blockIdx.x;
    int row = w[0], first = w[1], count = w[2];
    int qb = row % p.numQueryBlocks;
    int h = (row / p.numQueryBlocks) % p.heads;
    int b = row / (p.numQueryBlocks * p.heads);
    const int len = p.seqLens ? p.seqLens[b] : p.seqLen;
    u16* oBase = p.o + b * p.oStrideB + h * p.oStrideH;
    const float NEG_INF = __int_as_float(0xff800000);
    for (int e = threadIdx.x; e < QUERY_TILE * HEAD_DIM / 2; e += blockDim.x) {
        int lr = e / (HEAD_DIM / 2), c = (e % (HEAD_DIM / 2)) * 2;
        int q = qb * QUERY_TILE + lr;
        if (q >= p.seqLen) continue;
        float mx = NEG_INF;
        for (int i = 0; i < count; ++i) mx = fmaxf(mx, p.partialML[((long long)(first + i) * QUERY_TILE + lr) * 2]);
        float l = 0.f, o0 = 0.f, o1 = 0.f;
        if (mx != NEG_INF) {
            for (int i = 0; i < count; ++i) {
                long long base = (long long)(first + i) * QUERY_TILE + lr;
                float wgt = fast_exp2(p.partialML[base * 2] - mx);
                l += wgt * p.partialML[base * 2 + 1];
                o0 += wgt * p.partialO[base * HEAD_DIM + c];
                o1 += wgt * p.partialO[base * HEAD_DIM + c + 1];
            }
        }
        float inv = (l > 0.f && q < len) ? 1.f / l : 0.f;
        *(u32*)(oBase + (long long)q * p.oStrideT + c) = pack2(o0 * inv, o1 * inv);
    }
}

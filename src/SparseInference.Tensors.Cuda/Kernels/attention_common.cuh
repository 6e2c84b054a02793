// What every attention kernel shares: the parameter struct the host fills (CudaBackend.AttentionParams mirrors it
// field for field), the small PTX helpers, and each CTA's task: which (batch, head, query tile) it computes and
// which key tiles it visits. The backend's embedded-source reader splices it in place of a kernel's include line
// (NVRTC runs without include paths). Needs HEAD_DIM and USE_FP16 defined.

typedef unsigned short u16;
typedef unsigned int u32;

struct AttentionParams {
    const u16* q; const u16* k; const u16* v; u16* o;
    long long qStrideB, qStrideH, qStrideT;
    long long kStrideB, kStrideH, kStrideT;
    long long vStrideB, vStrideH, vStrideT;
    long long oStrideB, oStrideH, oStrideT;
    const int* seqLens;        // [B] valid lengths, or null: all T
    const int* blockOffsets;   // [B*H*numQueryBlocks + 1], or null: dense
    const int* blockIndices;   // key block ids
    const int* work;           // [numWork][4]: (b·heads + h)·numQueryBlocks + qb, list start, list end, partial slot (−1: final); or null
    float* partialO;           // [slots][QUERY_TILE][HEAD_DIM] unnormalised outputs of split rows
    float* partialML;          // [slots][QUERY_TILE][2] running max (log2 domain) and sum
    int batch, heads, seqLen;
    int layoutHeads;           // heads in the layout: `heads`, or 1 when one row serves every head
    int blockSize;             // key block size of the layout (multiple of KEY_TILE)
    int numQueryBlocks;        // query blocks per (batch, head) in the layout
    float scaleLog2;           // softmax scale · log2(e)
};

__device__ __forceinline__ u32 smem_addr(const void* p) {
    u32 a;
    asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void cp_async16(u32 dst, const void* src, int srcBytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(srcBytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Two floats to one register of two 16-bit values; lo lands in the low half.
__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
#if USE_FP16
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// One CTA's share of the call. With a work list, the CTA takes a range of one row's key blocks (a split row writes
// an unnormalised partial result into `slot`); otherwise it takes every listed block of its query block, or every
// key tile up to the valid length when dense.
struct AttentionTask {
    int b, h, qTile, q0, len;
    int listStart, listEnd, slot;
    int numTiles, tilesPerBlock;
    const u16* qBase; const u16* kBase; const u16* vBase; u16* oBase;
};

__device__ __forceinline__ AttentionTask attention_task(const AttentionParams& p, int queryTile, int keyTile) {
    AttentionTask t;
    t.qTile = blockIdx.x; t.h = blockIdx.y; t.b = blockIdx.z;
    t.listStart = 0; t.listEnd = 0; t.slot = -1;
    if (p.work) {
        const int* w = p.work + 4 * blockIdx.x;
        int row = w[0];
        t.qTile = row % p.numQueryBlocks;
        t.h = (row / p.numQueryBlocks) % p.heads;
        t.b = row / (p.numQueryBlocks * p.heads);
        t.listStart = w[1];
        t.listEnd = w[2];
        t.slot = w[3];
    }
    t.len = p.seqLens ? p.seqLens[t.b] : p.seqLen;
    t.q0 = t.qTile * queryTile;
    t.qBase = p.q + t.b * p.qStrideB + t.h * p.qStrideH;
    t.kBase = p.k + t.b * p.kStrideB + t.h * p.kStrideH;
    t.vBase = p.v + t.b * p.vStrideB + t.h * p.vStrideH;
    t.oBase = p.o + t.b * p.oStrideB + t.h * p.oStrideH;
    t.tilesPerBlock = p.blockSize / keyTile;
    if (p.work) {
        t.numTiles = (t.listEnd - t.listStart) * t.tilesPerBlock;
    } else if (p.blockOffsets) {
        int row = (t.b * p.layoutHeads + (p.layoutHeads == 1 ? 0 : t.h)) * p.numQueryBlocks + t.qTile;
        t.listStart = p.blockOffsets[row];
        t.numTiles = (p.blockOffsets[row + 1] - t.listStart) * t.tilesPerBlock;
    } else {
        t.numTiles = (t.len + keyTile - 1) / keyTile;
    }
    return t;
}

// Queries past the valid length, and a query block with no key block, produce zeros. Returns whether the CTA had
// nothing else to do.
__device__ __forceinline__ bool zero_if_empty(const AttentionParams& p, const AttentionTask& t, int queryTile, int tid, int nthreads) {
    if (t.slot >= 0 || (t.q0 < t.len && t.numTiles > 0)) return false;
    const int chunks = HEAD_DIM / 8;   // 16-byte chunks per row
    for (int c = tid; c < queryTile * chunks; c += nthreads) {
        int r = c / chunks, cc = c % chunks;
        if (t.q0 + r < p.seqLen) {
            unsigned long long* dst = (unsigned long long*)(t.oBase + (long long)(t.q0 + r) * p.oStrideT + cc * 8);
            dst[0] = 0ull; dst[1] = 0ull;
        }
    }
    return true;
}

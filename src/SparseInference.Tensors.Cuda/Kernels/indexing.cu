// Row gathers, row scatter-adds and per-row top-k. Compiled by NVRTC without include paths.

// out[i, :] = src[idx[i], :] on 16-bit words (every dtype is a whole number of them), so one kernel
// serves F32, F16, BF16 and I32 rows. Indices were range-checked on the host.
extern "C" __global__ void gather_rows_u16(const unsigned short* src, const int* idx, unsigned short* out,
                                           long long numRows, long long rowWords) {
    long long n = numRows * rowWords;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        long long r = e / rowWords, c = e - r * rowWords;
        out[e] = src[(long long)idx[r] * rowWords + c];
    }
}

// dst[idx[i], :] += scale[i]·src[i, :] (scale null: 1). Indices are distinct (checked on the host), so
// no two threads write one element and no atomics are needed.
extern "C" __global__ void scatter_add_rows_f32(const float* src, const int* idx, const float* scale, float* dst,
                                                long long numRows, long long rowElems) {
    long long n = numRows * rowElems;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        long long r = e / rowElems, c = e - r * rowElems;
        dst[(long long)idx[r] * rowElems + c] += (scale ? scale[r] : 1.f) * src[e];
    }
}

// Per row of n values: the k largest, descending, ties to the lower index. One warp per row; round t
// takes the best element after round t−1's pick in that order, so k rounds of n/32 compares each —
// meant for block selection (n = key blocks), where n is small.
extern "C" __global__ void topk_rows_f32(const float* x, float* values, int* indices, int rows, int n, int k) {
    int warpsPerBlock = blockDim.x >> 5;
    int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + (long long)row * n;
    const float NEG_INF = __int_as_float(0xff800000), POS_INF = __int_as_float(0x7f800000);
    float pv = POS_INF;
    int pi = -1;
    for (int t = 0; t < k; ++t) {
        float bv = NEG_INF;
        int bi = 0x7fffffff;
        for (int c = lane; c < n; c += 32) {
            float v = xr[c];
            bool eligible = v < pv || (v == pv && c > pi);
            if (eligible && (v > bv || (v == bv && c < bi))) { bv = v; bi = c; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
        }
        if (lane == 0) {
            values[(long long)row * k + t] = bv;
            indices[(long long)row * k + t] = bi;
        }
        pv = bv;
        pi = bi;
    }
}

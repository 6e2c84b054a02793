// fused_layer.cu run on the CPU (emu_shim.h) against a double-precision pre-LN encoder layer: layer_norm_linear's q/k/v,
// then attention_ffn from those q/k/v. Two sequences of 21 steps (not a multiple of the 8-row CTA or the 4-step blocks),
// the second valid for 13; dense, or with an argument a window layout (each block and its neighbours). Prints the
// relative errors (run.sh checks them).
#include "emu_shim.h"
#include <cstdio>
#include <random>
#include "fused_layer.emu.inc"

static double gelu(double z) { return 0.5 * z * (1 + std::erf(z / std::sqrt(2.0))); }
static void ln(const double* x, const float* g, const float* b, double* y, int n, double eps) {
    double m = 0; for (int i = 0; i < n; ++i) m += x[i]; m /= n;
    double v = 0; for (int i = 0; i < n; ++i) v += (x[i] - m) * (x[i] - m); v /= n;
    for (int i = 0; i < n; ++i) y[i] = (x[i] - m) / std::sqrt(v + eps) * g[i] + b[i];
}
int main(int argc, char** argv) {
    const int B = 2, T = 21, bs = 4;  // T not a multiple of ROWS or bs
    const bool window = argc > 1;
    std::mt19937 rng(7); std::uniform_real_distribution<float> U(-1, 1);
    auto rnd = [&](int n, float s) { std::vector<float> v(n); for (auto& x : v) x = U(rng) * s; return v; };
    auto x0 = rnd(B * T * D, 2), g1 = rnd(D, 1), b1 = rnd(D, 0.5), wqkv = rnd(3 * D * D, 0.3), bqkv = rnd(3 * D, 0.2);
    auto wo = rnd(D * D, 0.3), bo = rnd(D, 0.2), g2 = rnd(D, 1), b2 = rnd(D, 0.5), w1 = rnd(DFF * D, 0.3), bb1 = rnd(DFF, 0.2), w2 = rnd(D * DFF, 0.2), bb2 = rnd(D, 0.2);
    for (auto& v : g1) v += 1.5f; for (auto& v : g2) v += 1.5f;
    // The kernels read Linear weights transposed ([in, out]); transpose_f32 makes that copy on the device.
    auto transposed = [](const std::vector<float>& w, int rows, int cols) {
        std::vector<float> t(w.size(), NAN);
        launch(2, 1, 64, [&] { transpose_f32(w.data(), t.data(), rows, cols); });
        return t;
    };
    auto wqkvT = transposed(wqkv, 3 * D, D), woT = transposed(wo, D, D), w1T = transposed(w1, DFF, D), w2T = transposed(w2, D, DFF);
    int lens[B] = {T, 13};
    const int nqb = (T + bs - 1) / bs;
    std::vector<int> offs{0}, idx;  // window: |qb - kb| <= 1, shared across heads
    for (int b = 0; b < B; ++b) for (int qb = 0; qb < nqb; ++qb) { for (int kb = std::max(0, qb - 1); kb <= std::min(nqb - 1, qb + 1); ++kb) idx.push_back(kb); offs.push_back(idx.size()); }
    // x as stored
#if X_BF16
    std::vector<unsigned short> xs(B * T * D); for (int i = 0; i < B * T * D; ++i) xs[i] = emu_bf16(x0[i]);
    auto xval = [&](int i) { unsigned u = (unsigned)xs[i] << 16; float f; std::memcpy(&f, &u, 4); return (double)f; };
    void* xp = xs.data();
#else
    std::vector<float> xs = x0; auto xval = [&](int i) { return (double)xs[i]; }; void* xp = xs.data();
#endif
    std::vector<double> xin(B * T * D); for (int i = 0; i < B * T * D; ++i) xin[i] = xval(i);
    // kernel 1: LN1 + qkv
    std::vector<float> qkv(B * T * 3 * D, NAN);
    const float eps = 1e-5f;
    launch((B * T + ROWS - 1) / ROWS, 1, THREADS, [&] { layer_norm_linear(xp, g1.data(), b1.data(), wqkvT.data(), bqkv.data(), qkv.data(), B * T, 3 * D, eps); });
    // reference qkv
    std::vector<double> rq(B * T * 3 * D), h(D);
    double errq = 0, nq = 0;
    for (int r = 0; r < B * T; ++r) { ln(&xin[r * D], g1.data(), b1.data(), h.data(), D, eps);
        for (int n = 0; n < 3 * D; ++n) { double a = bqkv[n]; for (int k = 0; k < D; ++k) a += h[k] * wqkv[n * D + k]; rq[r * 3 * D + n] = a; errq += (a - qkv[r * 3 * D + n]) * (a - qkv[r * 3 * D + n]); nq += a * a; } }
    std::printf("qkv rel err %.3e\n", std::sqrt(errq / nq));
    // kernel 2
    FusedLayerParams p{qkv.data(), xp, lens, window ? offs.data() : nullptr, window ? idx.data() : nullptr, woT.data(), bo.data(), g2.data(), b2.data(), w1T.data(), bb1.data(), w2T.data(), bb2.data(), T, 1, bs, nqb, (float)(1.0 / std::sqrt((double)DH)), eps};
    launch((T + ROWS - 1) / ROWS, B, THREADS, [&] { attention_ffn(p); });
    // reference layer from the kernel's own qkv (isolates kernel 2)
    double err = 0, nrm = 0;
    for (int b = 0; b < B; ++b) for (int t = 0; t < T; ++t) {
        std::vector<double> a(D, 0.0);
        if (t < lens[b]) for (int hd = 0; hd < H; ++hd) {
            std::vector<int> keys;
            if (window) { int qb = t / bs; for (int e = offs[b * nqb + qb]; e < offs[b * nqb + qb + 1]; ++e) for (int k = idx[e] * bs; k < std::min(idx[e] * bs + bs, lens[b]); ++k) keys.push_back(k); }
            else for (int k = 0; k < lens[b]; ++k) keys.push_back(k);
            std::vector<double> s(keys.size()); double mx = -1e300;
            for (size_t i = 0; i < keys.size(); ++i) { double d = 0; for (int j = 0; j < DH; ++j) d += (double)qkv[(b * T + t) * 3 * D + hd * DH + j] * qkv[(b * T + keys[i]) * 3 * D + D + hd * DH + j]; s[i] = d / std::sqrt((double)DH); mx = std::max(mx, s[i]); }
            double sum = 0; for (auto& v : s) { v = std::exp(v - mx); sum += v; }
            for (size_t i = 0; i < keys.size(); ++i) for (int j = 0; j < DH; ++j) a[hd * DH + j] += s[i] / sum * qkv[(b * T + keys[i]) * 3 * D + 2 * D + hd * DH + j];
        }
        std::vector<double> x1(D), h2(D), hid(DFF), x2(D);
        for (int c = 0; c < D; ++c) { double acc = bo[c]; for (int k = 0; k < D; ++k) acc += a[k] * wo[c * D + k]; x1[c] = xin[(b * T + t) * D + c] + acc; }
        ln(x1.data(), g2.data(), b2.data(), h2.data(), D, eps);
        for (int c = 0; c < DFF; ++c) { double acc = bb1[c]; for (int k = 0; k < D; ++k) acc += h2[k] * w1[c * D + k]; hid[c] = gelu(acc); }
        for (int c = 0; c < D; ++c) { double acc = bb2[c]; for (int k = 0; k < DFF; ++k) acc += hid[k] * w2[c * DFF + k]; x2[c] = x1[c] + acc;
            double got = xval((b * T + t) * D + c); err += (got - x2[c]) * (got - x2[c]); nrm += x2[c] * x2[c]; }
    }
    std::printf("layer rel err %.3e (%s)\n", std::sqrt(err / nrm), window ? "window" : "dense");
    return 0;
}

using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// Single-precision GEMM on row-major operands, BLIS style: op(B) is packed per KC×NC block into NR-wide
/// column panels, op(A) per MC×KC block into MR-tall row panels (both zero-padded, so the micro-kernel always
/// computes a full MR×NR tile), and a register-blocked micro-kernel of MR×NR FMAs runs over them. Loop order:
/// jc (NC) → pc (KC) → [pack B] → ic (MC) → [pack A] → ir (MR) → jr (NR), so an A micro-panel stays in L1 while
/// the packed B block streams from L2. Threads split C into regions (see <see cref="Grid"/>). alpha/beta are
/// applied on the first KC chunk, the bias and the activation on the last, while the tile is still in registers.
/// </summary>
internal static unsafe class Gemm
{
    /// <summary>Micro-tile rows.</summary>
    internal const int MR = 6;

    /// <summary>Micro-tile columns: two vectors wide.</summary>
    internal static readonly int NR = Vector512.IsHardwareAccelerated ? 32 : 16;

    internal static int KC = 256;
    internal static int MC = 96;
    internal static int NC = 512;

    /// <summary>Read a plain A in place rather than packing it (a tuning switch).</summary>
    internal static bool DirectA = true;

    /// <summary>Below this many multiply-adds a thread hand-off costs more than it saves.</summary>
    private const double SerialBelow = 3e5;

    /// <summary>
    /// C[M×N] = act(alpha·op(A)·op(B) + beta·C + bias). <paramref name="packedB"/>, when not null, is op(B) already laid
    /// out as full-K panels (<see cref="PackedWeight"/>) and is read in place of B.
    /// </summary>
    public static void Run(
        CpuParallel parallel, bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, float* bias, Activation activation, float* packedB = null)
    {
        if (m == 0 || n == 0) return;
        if (k == 0 || !Vector256.IsHardwareAccelerated)
        {
            RunReference(parallel, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, activation);
            return;
        }
        var job = new GemmJob(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, activation, packedB);
        var (rm, rn) = Grid(parallel.Threads, m, n, k, packedB != null);
        if (rm * rn == 1)
        {
            Region(job, 0, m, 0, n);
            return;
        }
        // C is cut into rm × rn regions, each computed start to finish by one thread with its own packed
        // buffers: no barrier inside the call, and regions are claimed dynamically, so a thread that is
        // descheduled on a shared machine leaves the remaining regions to the others.
        var panels = (n + NR - 1) / NR;
        parallel.For(rm * rn, w =>
        {
            int i = w / rn, j = w % rn;
            var r0 = (int)((long)m * i / rm);
            var r1 = (int)((long)m * (i + 1) / rm);
            var c0 = (int)((long)panels * j / rn) * NR;
            var c1 = Math.Min(n, (int)((long)panels * (j + 1) / rn) * NR);
            Region(job, r0, r1, c0, c1);
        });
    }

    /// <summary>How many row and column regions to cut C into for the given thread count.</summary>
    internal static (int Rows, int Cols) Grid(int threads, int m, int n, int k, bool prepackedB = false)
    {
        if (threads == 1 || (double)m * n * k < SerialBelow) return (1, 1);
        var target = 4 * threads;
        var panels = (n + NR - 1) / NR;
        // Regions of at least ~48 rows and 64 columns keep the repeated packing of A and B small next to the FMAs;
        // with B laid out at load only A's few rows are ever packed, so row regions may be as short as two micro-tiles.
        var maxRows = Math.Max(1, m / (prepackedB ? 2 * MR : 48));
        var maxCols = Math.Max(1, panels / 2);
        var rn = Math.Clamp(n / 512, 1, Math.Min(target, maxCols));
        var rm = Math.Clamp((target + rn - 1) / rn, 1, maxRows);
        if (rm * rn < target) rn = Math.Clamp((target + rm - 1) / rm, rn, maxCols);
        return (rm, rn);
    }

    /// <summary>Computes C[r0..r1, c0..c1) single-threaded: jc → pc → pack B → ic → pack A → macro-kernel.</summary>
    private static void Region(in GemmJob g, int r0, int r1, int c0, int c1)
    {
        var nr = NR;
        var packedB = g.PackedB != null ? null : Buffer(ref t_packB, KC * RoundUp(NC, nr));
        var packedA = Buffer(ref t_packA, RoundUp(MC, MR) * KC);
        for (var jc = c0; jc < c1; jc += NC)
        {
            var nc = Math.Min(NC, c1 - jc);
            var bPanels = (nc + nr - 1) / nr;
            for (var pc = 0; pc < g.K; pc += KC)
            {
                var kc = Math.Min(KC, g.K - pc);
                float* panels;
                long panelStride;
                if (g.PackedB != null)
                {
                    // Laid out at load: panel jc/NR + jp, rows pc … pc+kc, contiguous.
                    panels = g.PackedB + (long)(jc / nr) * g.K * nr + (long)pc * nr;
                    panelStride = (long)g.K * nr;
                }
                else
                {
                    for (var jp = 0; jp < bPanels; jp++)
                    {
                        PackB(g.TransB, g.B, g.Ldb, pc, kc, jc + jp * nr, Math.Min(nr, nc - jp * nr), packedB + (long)jp * kc * nr, nr);
                    }
                    panels = packedB;
                    panelStride = (long)kc * nr;
                }
                var step = new GemmStep(g.A, g.Lda, g.TransA, g.C, g.Ldc, pc, kc, jc, nc, pc == 0, pc + kc == g.K, g.Alpha, g.Beta, g.Bias, g.Activation, panels, panelStride, g.M);
                for (var ic = r0; ic < r1; ic += MC)
                {
                    Macro(step, ic, Math.Min(MC, r1 - ic), 0, bPanels, packedA);
                }
            }
        }
    }

    private sealed class GemmJob(
        bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, float* bias, Activation activation, float* packedB)
    {
        public readonly bool TransA = transA;
        public readonly bool TransB = transB;
        public readonly int M = m;
        public readonly int N = n;
        public readonly int K = k;
        public readonly float Alpha = alpha;
        public readonly float* A = a;
        public readonly int Lda = lda;
        public readonly float* B = b;
        public readonly int Ldb = ldb;
        public readonly float Beta = beta;
        public readonly float* C = c;
        public readonly int Ldc = ldc;
        public readonly float* Bias = bias;
        public readonly Activation Activation = activation;
        public readonly float* PackedB = packedB;
    }

    private readonly struct GemmStep(
        float* a, int lda, bool transA, float* c, int ldc, int pc, int kc, int jc, int nc, bool first, bool last,
        float alpha, float beta, float* bias, Activation activation, float* packedB, long panelStride, int m)
    {
        public readonly float* A = a;
        public readonly int Lda = lda;
        public readonly bool TransA = transA;
        public readonly float* C = c;
        public readonly int Ldc = ldc;
        public readonly int Pc = pc;
        public readonly int Kc = kc;
        public readonly int Jc = jc;
        public readonly int Nc = nc;
        public readonly bool First = first;
        public readonly bool Last = last;
        public readonly float Alpha = alpha;
        public readonly float Beta = beta;
        public readonly float* Bias = bias;
        public readonly Activation Activation = activation;
        public readonly float* PackedB = packedB;
        public readonly long PanelStride = panelStride;
        public readonly int M = m;
    }

    [ThreadStatic] private static float[]? t_packA;
    [ThreadStatic] private static float[]? t_packB;

    /// <summary>A thread's packing buffer of at least <paramref name="floats"/>, 64-byte aligned.</summary>
    private static float* Buffer(ref float[]? slot, int floats)
    {
        var need = floats + 16;
        var buf = slot;
        if (buf is null || buf.Length < need) slot = buf = GC.AllocateUninitializedArray<float>(need, pinned: true);
        // Pinned-object-heap array: the address is stable for the thread's lifetime.
        var p = (float*)Unsafe.AsPointer(ref buf[0]);
        return (float*)(((nint)p + 63) & ~(nint)63);
    }

    private static void Macro(in GemmStep s, int ic, int mc, int panel0, int panel1, float* packedA)
    {
        int mr = MR, nr = NR, kc = s.Kc;
        var aPanels = (mc + mr - 1) / mr;
        // A plain (not transposed) A is read in place by the Vector512 kernel, six row streams that stay in L1
        // across the column panels; only a transposed A, or a last panel of fewer than six rows, is packed.
        var direct = DirectA && !s.TransA && Vector512.IsHardwareAccelerated;
        for (var ip = 0; ip < aPanels; ip++)
        {
            var rows = Math.Min(mr, mc - ip * mr);
            if (direct && rows == mr) continue;
            PackA(s.TransA, s.A, s.Lda, ic + ip * mr, rows, s.Pc, kc, packedA + (long)ip * kc * mr, mr);
        }
        // Scale for the accumulated product, and what to do with the existing C.
        var betaMode = s.First ? s.Beta : 1f;
        var tile = stackalloc float[MR * NR + 16];
        tile = (float*)(((nint)tile + 63) & ~(nint)63);
        for (var ip = 0; ip < aPanels; ip++)
        {
            var rows = Math.Min(mr, mc - ip * mr);
            var pa = packedA + (long)ip * kc * mr;
            for (var jp = panel0; jp < panel1; jp++)
            {
                var col = s.Jc + jp * nr;
                var cols = Math.Min(nr, s.Jc + s.Nc - col);
                var cTile = s.C + (long)(ic + ip * mr) * s.Ldc + col;
                var bias = s.Last && s.Bias != null ? s.Bias + col : null;
                var gelu = s.Last && s.Activation == Activation.Gelu;
                // The kernel leaves the tile in L1 scratch; keeping the C update out of the FMA loop's method
                // lets the JIT hold all accumulators in registers.
                if (direct && rows == mr)
                {
                    Kernel6x32Direct(kc, s.A + (long)(ic + ip * mr) * s.Lda + s.Pc, s.Lda, s.PackedB + jp * s.PanelStride, tile);
                    if (cols == 32) StoreFull6x32(tile, cTile, s.Ldc, s.Alpha, betaMode, bias, gelu);
                    else StorePartial(tile, nr, cTile, s.Ldc, rows, cols, s.Alpha, betaMode, bias, gelu);
                }
                else if (Vector512.IsHardwareAccelerated)
                {
                    Kernel6x32(kc, pa, s.PackedB + jp * s.PanelStride, tile);
                    if (rows == 6 && cols == 32) StoreFull6x32(tile, cTile, s.Ldc, s.Alpha, betaMode, bias, gelu);
                    else StorePartial(tile, nr, cTile, s.Ldc, rows, cols, s.Alpha, betaMode, bias, gelu);
                }
                else
                {
                    Kernel6x16(kc, pa, s.PackedB + jp * s.PanelStride, tile);
                    if (rows == 6 && cols == 16) StoreFull6x16(tile, cTile, s.Ldc, s.Alpha, betaMode, bias, gelu);
                    else StorePartial(tile, nr, cTile, s.Ldc, rows, cols, s.Alpha, betaMode, bias, gelu);
                }
            }
        }
    }

    /// <summary>Packs op(A)[row0 .. row0+rows, p0 .. p0+kc] as dst[p·MR + i], zero rows past 'rows'.</summary>
    private static void PackA(bool transA, float* a, int lda, int row0, int rows, int p0, int kc, float* dst, int mr)
    {
        if (!transA)
        {
            for (var i = 0; i < mr; i++)
            {
                if (i < rows)
                {
                    var src = a + (long)(row0 + i) * lda + p0;
                    for (var p = 0; p < kc; p++) dst[p * mr + i] = src[p];
                }
                else
                {
                    for (var p = 0; p < kc; p++) dst[p * mr + i] = 0f;
                }
            }
        }
        else
        {
            for (var p = 0; p < kc; p++)
            {
                var src = a + (long)(p0 + p) * lda + row0;
                var d = dst + p * mr;
                var i = 0;
                for (; i < rows; i++) d[i] = src[i];
                for (; i < mr; i++) d[i] = 0f;
            }
        }
    }

    /// <summary>Packs op(B)[p0 .. p0+kc, col0 .. col0+cols] as dst[p·NR + j], zero columns past 'cols'.</summary>
    internal static void PackB(bool transB, float* b, int ldb, int p0, int kc, int col0, int cols, float* dst, int nr)
    {
        if (!transB)
        {
            for (var p = 0; p < kc; p++)
            {
                var src = b + (long)(p0 + p) * ldb + col0;
                var d = dst + p * nr;
                if (cols == nr)
                {
                    if (nr == 32)
                    {
                        Vector512.Store(Vector512.Load(src), d);
                        Vector512.Store(Vector512.Load(src + 16), d + 16);
                    }
                    else
                    {
                        Vector256.Store(Vector256.Load(src), d);
                        Vector256.Store(Vector256.Load(src + 8), d + 8);
                    }
                }
                else
                {
                    var j = 0;
                    for (; j < cols; j++) d[j] = src[j];
                    for (; j < nr; j++) d[j] = 0f;
                }
            }
        }
        else
        {
            // op(B) = Bᵀ: column j of op(B) is row col0+j of B, contiguous over p.
            for (var j = 0; j < nr; j++)
            {
                if (j < cols)
                {
                    var src = b + (long)(col0 + j) * ldb + p0;
                    for (var p = 0; p < kc; p++) dst[p * nr + j] = src[p];
                }
                else
                {
                    for (var p = 0; p < kc; p++) dst[p * nr + j] = 0f;
                }
            }
        }
    }

    /// <summary>6×32 tile: 12 Vector512 accumulators, one broadcast of A per row and two loads of B per k.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x32(int kc, float* a, float* b, float* tile)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (var p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            a += 6;
            b += 32;
        }
        c00.Store(tile); c01.Store(tile + 16);
        c10.Store(tile + 32); c11.Store(tile + 48);
        c20.Store(tile + 64); c21.Store(tile + 80);
        c30.Store(tile + 96); c31.Store(tile + 112);
        c40.Store(tile + 128); c41.Store(tile + 144);
        c50.Store(tile + 160); c51.Store(tile + 176);
    }

    /// <summary>6×32 tile reading six rows of a row-major A in place (stride lda) instead of a packed panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x32Direct(int kc, float* a, int lda, float* b, float* tile)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        float* a0 = a, a1 = a + lda, a2 = a + 2L * lda, a3 = a + 3L * lda, a4 = a + 4L * lda, a5 = a + 5L * lda;
        for (var p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a0[p]);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a1[p]);
            c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a2[p]);
            c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a3[p]);
            c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a4[p]);
            c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a5[p]);
            c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            b += 32;
        }
        c00.Store(tile); c01.Store(tile + 16);
        c10.Store(tile + 32); c11.Store(tile + 48);
        c20.Store(tile + 64); c21.Store(tile + 80);
        c30.Store(tile + 96); c31.Store(tile + 112);
        c40.Store(tile + 128); c41.Store(tile + 144);
        c50.Store(tile + 160); c51.Store(tile + 176);
    }

    /// <summary>6×16 tile for AVX2 machines: 12 Vector256 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x16(int kc, float* a, float* b, float* tile)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (var p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(av, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(av, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(av, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(av, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
            av = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(av, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
            av = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(av, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
            a += 6;
            b += 16;
        }
        c00.Store(tile); c01.Store(tile + 8);
        c10.Store(tile + 16); c11.Store(tile + 24);
        c20.Store(tile + 32); c21.Store(tile + 40);
        c30.Store(tile + 48); c31.Store(tile + 56);
        c40.Store(tile + 64); c41.Store(tile + 72);
        c50.Store(tile + 80); c51.Store(tile + 88);
    }

    private static void StoreFull6x32(float* tile, float* c, int ldc, float alpha, float beta, float* bias, bool gelu)
    {
        for (var i = 0; i < 6; i++) Store(c + (long)i * ldc, Vector512.Load(tile + i * 32), Vector512.Load(tile + i * 32 + 16), alpha, beta, bias, gelu);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> acc0, Vector512<float> acc1, float alpha, float beta, float* bias, bool gelu)
    {
        var av = Vector512.Create(alpha);
        Vector512<float> v0, v1;
        if (beta == 0f)
        {
            v0 = acc0 * av;
            v1 = acc1 * av;
        }
        else if (beta == 1f)
        {
            v0 = Vector512.FusedMultiplyAdd(acc0, av, Vector512.Load(c));
            v1 = Vector512.FusedMultiplyAdd(acc1, av, Vector512.Load(c + 16));
        }
        else
        {
            var bv = Vector512.Create(beta);
            v0 = Vector512.FusedMultiplyAdd(acc0, av, Vector512.Load(c) * bv);
            v1 = Vector512.FusedMultiplyAdd(acc1, av, Vector512.Load(c + 16) * bv);
        }
        if (bias != null)
        {
            v0 += Vector512.Load(bias);
            v1 += Vector512.Load(bias + 16);
        }
        if (gelu)
        {
            v0 = MathKernels.Gelu(v0);
            v1 = MathKernels.Gelu(v1);
        }
        v0.Store(c);
        v1.Store(c + 16);
    }

    private static void StoreFull6x16(float* tile, float* c, int ldc, float alpha, float beta, float* bias, bool gelu)
    {
        var av = Vector256.Create(alpha);
        for (var i = 0; i < 6; i++)
        {
            var crow = c + (long)i * ldc;
            for (var j = 0; j < 16; j += 8)
            {
                var v = Vector256.Load(tile + i * 16 + j) * av;
                if (beta == 1f) v += Vector256.Load(crow + j);
                else if (beta != 0f) v = Vector256.FusedMultiplyAdd(Vector256.Load(crow + j), Vector256.Create(beta), v);
                if (bias != null) v += Vector256.Load(bias + j);
                if (gelu) v = MathKernels.Gelu(v);
                v.Store(crow + j);
            }
        }
    }

    private static void StorePartial(float* tile, int nr, float* c, int ldc, int rows, int cols, float alpha, float beta, float* bias, bool gelu)
    {
        for (var i = 0; i < rows; i++)
        {
            var crow = c + (long)i * ldc;
            var t = tile + i * nr;
            for (var j = 0; j < cols; j++)
            {
                var v = alpha * t[j];
                if (beta != 0f) v += beta * crow[j];
                if (bias != null) v += bias[j];
                if (gelu) v = MathKernels.Gelu(v);
                crow[j] = v;
            }
        }
    }

    private static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    /// <summary>Straightforward row-times-panel product; used for K = 0 and on machines without 256-bit vectors.</summary>
    internal static void RunReference(
        CpuParallel parallel, bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, float* bias, Activation activation)
    {
        float[]? bt = null;
        if (transB)
        {
            bt = new float[(long)k * n];
            for (var j = 0; j < n; j++)
            {
                for (var p = 0; p < k; p++) bt[(long)p * n + j] = b[(long)j * ldb + p];
            }
        }
        parallel.ForRange(m, 2L * n * Math.Max(k, 1), (s, e) =>
        {
            for (var i = (int)s; i < e; i++)
            {
                var crow = new Span<float>(c + (long)i * ldc, n);
                if (beta == 0f) crow.Clear();
                else if (beta != 1f) TensorPrimitives.Multiply(crow, beta, crow);
                for (var p = 0; p < k; p++)
                {
                    var av = alpha * (transA ? a[(long)p * lda + i] : a[(long)i * lda + p]);
                    ReadOnlySpan<float> brow = bt is null ? new ReadOnlySpan<float>(b + (long)p * ldb, n) : bt.AsSpan(p * n, n);
                    TensorPrimitives.MultiplyAdd(brow, av, crow, crow);
                }
                Epilogue(crow, bias, activation);
            }
        });
    }

    /// <summary>Adds the bias and applies the activation to one row of C.</summary>
    public static void Epilogue(Span<float> row, float* bias, Activation activation)
    {
        if (bias != null) TensorPrimitives.Add(row, new ReadOnlySpan<float>(bias, row.Length), row);
        if (activation == Activation.Gelu) MathKernels.Gelu(row, row);
    }
}

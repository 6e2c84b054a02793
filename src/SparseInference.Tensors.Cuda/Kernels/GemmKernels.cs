using SparseInference.Tensors.Cuda.Interop;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Kernels;

/// <summary>
/// Matrix products: cuBLAS (any precision, batched), cuBLASLt (BF16 operands, bias and GELU in the epilogue, one plan per
/// shape: descriptors and the heuristic's algorithm, cached) and small_k.cu (an inner dimension of a few sensor channels,
/// where cuBLAS tiles are far deeper than K). The handles and the cuBLASLt workspace live as long as the device.
/// </summary>
public sealed unsafe class GemmKernels : IDisposable
{
    private readonly CudaDevice device;
    private readonly CublasHandle cublas;

    internal GemmKernels(CudaDevice device)
    {
        this.device = device;
        CuBlas.Check(CuBlas.cublasCreate_v2(out var blasPtr), nameof(CuBlas.cublasCreate_v2));
        cublas = new CublasHandle(blasPtr, device.ContextHandle);
        CuBlas.Check(CuBlas.cublasSetStream_v2(blasPtr, device.Stream), nameof(CuBlas.cublasSetStream_v2));
        CuBlas.Check(CuBlas.cublasGetVersion_v2(blasPtr, out var version), nameof(CuBlas.cublasGetVersion_v2));
        CublasVersion = version;
    }

    /// <summary>cuBLAS's version number (e.g. 130100).</summary>
    public int CublasVersion { get; }

    /// <summary>
    /// C = alpha·A·Bᵀ + beta·C + bias for a small inner dimension k ≤ 16 (A [m, k], B [n, k] FP32, bias [n] FP32 or
    /// null): tiles of 64 rows × 256 columns with the operands staged in shared memory, FP32 arithmetic; C FP32, or BF16
    /// with <paramref name="cBf16"/>.
    /// </summary>
    public void LinearSmallK(CudaBuffer a, CudaBuffer b, CudaBuffer? bias, CudaBuffer c, bool cBf16, float alpha, float beta, int m, int n, int k)
    {
        if (k < 1 || k > 16)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k: expected 1 … 16 (SMALL_K_MAX of small_k.cu).");
        }

        if (m > 65535L * 64)
        {
            throw new ArgumentOutOfRangeException(nameof(m), m, $"m: expected at most {65535L * 64} rows (the grid's second dimension).");
        }

        CudaDevice.CheckRange(a, 0, (long)m * k * 4, nameof(a));
        CudaDevice.CheckRange(b, 0, (long)n * k * 4, nameof(b));
        CudaDevice.CheckRange(c, 0, (long)m * n * (cBf16 ? 2 : 4), nameof(c));
        if (bias is not null)
        {
            CudaDevice.CheckRange(bias, 0, (long)n * 4, nameof(bias));
        }

        device.MakeCurrent();
        var f = device.Function("small_k.cu", "linear_small_k");
        ulong pa = a.Pointer, pb = b.Pointer, pbias = bias?.Pointer ?? 0, pc = c.Pointer;
        int flag = cBf16 ? 1 : 0;
        void** args = stackalloc void*[] { &pa, &pb, &pbias, &pc, &flag, &alpha, &beta, &m, &n, &k };
        const int Rows = 64, Columns = 256; // SMALL_K_ROWS, SMALL_K_COLS of small_k.cu
        device.Launch(f, (uint)((n + Columns - 1) / Columns), (uint)((m + Rows - 1) / Rows), 1, Columns, 0, args, "linear_small_k");
    }

    /// <summary>
    /// Row-major C[m,n] = A[m,k]·B, with B given as [k,n], or as [n,k] when
    /// <paramref name="transposeB"/> (a PyTorch Linear weight: y = x·Wᵀ). FP32 accumulation;
    /// inputs FP32, BF16 or FP16; C has the input type.
    /// </summary>
    public void MatMul(CudaBuffer a, CudaBuffer b, CudaBuffer c, int m, int n, int k, bool transposeB, CudaElementType type = CudaElementType.Float32) =>
        MatMulStridedBatched(a, b, c, m, n, k, transposeB, 1, 0, 0, 0, type);

    /// <summary>Batched <see cref="MatMul"/> with element strides between the batch's matrices.</summary>
    public void MatMulStridedBatched(CudaBuffer a, CudaBuffer b, CudaBuffer c, int m, int n, int k, bool transposeB,
        int batch, long strideA, long strideB, long strideC, CudaElementType type = CudaElementType.Float32) =>
        Gemm(a, b, c, m, n, k, transposeA: false, transposeB, batch, strideA, strideB, strideC, 1f, 0f, type);

    /// <summary>
    /// Row-major C = alpha·op(A)·op(B) + beta·C for a batch of strided matrices (stride 0 broadcasts an
    /// operand). op(A) is [m,k] (A stored [k,m] when transposed); op(B) is [k,n] (B stored [n,k] when transposed).
    /// </summary>
    public void Gemm(CudaBuffer a, CudaBuffer b, CudaBuffer c, int m, int n, int k, bool transposeA, bool transposeB,
        int batch, long strideA, long strideB, long strideC, float alpha, float beta, CudaElementType type = CudaElementType.Float32,
        CudaElementType? outputType = null)
    {
        var size = type.Size();
        var outType = outputType ?? type;
        CudaDevice.CheckRange(a, 0, (((long)(batch - 1) * strideA) + ((long)m * k)) * size, nameof(a));
        CudaDevice.CheckRange(b, 0, (((long)(batch - 1) * strideB) + ((long)k * n)) * size, nameof(b));
        CudaDevice.CheckRange(c, 0, (((long)(batch - 1) * strideC) + ((long)m * n)) * outType.Size(), nameof(c));
        device.MakeCurrent();
        static int CublasType(CudaElementType t) => t switch
        {
            CudaElementType.Float32 => CuBlas.CUDA_R_32F,
            CudaElementType.BFloat16 => CuBlas.CUDA_R_16BF,
            _ => CuBlas.CUDA_R_16F,
        };

        // cuBLAS runs 16-bit operands with an FP32 output and FP32 compute (BF16 tensor cores, FP32 accumulation).
        var dataType = CublasType(type);
        var outputDataType = CublasType(outType);

        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands, keep the memory.
        CuBlas.Check(
            CuBlas.cublasGemmStridedBatchedEx(
                cublas.DangerousGetHandle(),
                transposeB ? CuBlas.CUBLAS_OP_T : CuBlas.CUBLAS_OP_N, transposeA ? CuBlas.CUBLAS_OP_T : CuBlas.CUBLAS_OP_N,
                n, m, k,
                &alpha, b.Pointer, dataType, transposeB ? k : n, strideB,
                a.Pointer, dataType, transposeA ? m : k, strideA,
                &beta, c.Pointer, outputDataType, n, strideC,
                batch, CuBlas.CUBLAS_COMPUTE_32F, CuBlas.CUBLAS_GEMM_DEFAULT),
            nameof(CuBlas.cublasGemmStridedBatchedEx));
    }

    /// <summary>
    /// Row-major C = alpha·op(A)·op(B) + beta·C (+ bias[N] broadcast over rows) through cuBLASLt: A and B BF16,
    /// C FP32 (bias FP32), or C BF16 (bias BF16) with <paramref name="bf16Output"/>, FP32 accumulation, the bias added
    /// in the product's epilogue (no separate pass over C). One
    /// matrix (no batch). Plans (descriptors and the heuristic's algorithm) are cached per shape. Returns false,
    /// having queued nothing, where cuBLASLt offers no algorithm for the shape (the caller then uses <see cref="Gemm"/>).
    /// </summary>
    public bool GemmBFloat16(CudaBuffer a, CudaBuffer b, CudaBuffer c, int m, int n, int k, bool transposeA, bool transposeB,
        float alpha, float beta, CudaBuffer? bias, bool bf16Output = false, bool gelu = false)
    {
        var outSize = bf16Output ? 2 : 4;
        CudaDevice.CheckRange(a, 0, (long)m * k * 2, nameof(a));
        CudaDevice.CheckRange(b, 0, (long)k * n * 2, nameof(b));
        CudaDevice.CheckRange(c, 0, (long)m * n * outSize, nameof(c));
        if (bias is not null)
        {
            CudaDevice.CheckRange(bias, 0, (long)n * outSize, nameof(bias));
        }

        device.MakeCurrent();
        var plan = LtPlanFor(m, n, k, transposeA, transposeB, bias is not null, bf16Output, gelu);
        if (plan is null)
        {
            return false;
        }

        var lt = LtHandle();
        if (bias is not null)
        {
            var pointer = bias.Pointer;
            CuBlas.Check(CuBlasLt.cublasLtMatmulDescSetAttribute(plan.Desc, CuBlasLt.CUBLASLT_MATMUL_DESC_BIAS_POINTER, &pointer, (nuint)sizeof(ulong)),
                nameof(CuBlasLt.cublasLtMatmulDescSetAttribute));
        }

        var algo = plan.Algo;
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B's memory is cuBLAS's first operand.
        CuBlas.Check(
            CuBlasLt.cublasLtMatmul(lt, plan.Desc, &alpha, b.Pointer, plan.ALayout, a.Pointer, plan.BLayout,
                &beta, c.Pointer, plan.CLayout, c.Pointer, plan.CLayout, algo.Algo, ltWorkspace!.Pointer, (nuint)ltWorkspace.Bytes, device.Stream),
            nameof(CuBlasLt.cublasLtMatmul));
        return true;
    }

    private const long LtWorkspaceBytes = 32L << 20;
    private CublasLtHandle? ltHandle;
    private CudaBuffer? ltWorkspace;
    private readonly Dictionary<(int M, int N, int K, bool TA, bool TB, bool Bias, bool Bf16Out, bool Gelu), LtPlan?> ltPlans = [];

    private nint LtHandle()
    {
        if (ltHandle is null)
        {
            CuBlas.Check(CuBlasLt.cublasLtCreate(out var h), nameof(CuBlasLt.cublasLtCreate));
            ltHandle = new CublasLtHandle(h);
            ltWorkspace = device.Allocate(LtWorkspaceBytes, MemoryCategory.Workspace);
        }

        return ltHandle.DangerousGetHandle();
    }

    private LtPlan? LtPlanFor(int m, int n, int k, bool transposeA, bool transposeB, bool bias, bool bf16Output, bool gelu)
    {
        var key = (m, n, k, transposeA, transposeB, bias, bf16Output, gelu);
        if (ltPlans.TryGetValue(key, out var cached))
        {
            return cached;
        }

        var lt = LtHandle();
        var plan = new LtPlan();
        try
        {
            CuBlas.Check(CuBlasLt.cublasLtMatmulDescCreate(out plan.Desc, CuBlas.CUBLAS_COMPUTE_32F, CuBlas.CUDA_R_32F), nameof(CuBlasLt.cublasLtMatmulDescCreate));
            int opA = transposeB ? CuBlas.CUBLAS_OP_T : CuBlas.CUBLAS_OP_N, opB = transposeA ? CuBlas.CUBLAS_OP_T : CuBlas.CUBLAS_OP_N;
            int epilogue = (bias, gelu) switch
            {
                (true, true) => CuBlasLt.CUBLASLT_EPILOGUE_GELU_BIAS,
                (false, true) => CuBlasLt.CUBLASLT_EPILOGUE_GELU,
                (true, false) => CuBlasLt.CUBLASLT_EPILOGUE_BIAS,
                _ => CuBlasLt.CUBLASLT_EPILOGUE_DEFAULT,
            };
            SetDesc(plan.Desc, CuBlasLt.CUBLASLT_MATMUL_DESC_TRANSA, opA);
            SetDesc(plan.Desc, CuBlasLt.CUBLASLT_MATMUL_DESC_TRANSB, opB);
            SetDesc(plan.Desc, CuBlasLt.CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);

            // Column-major view: first operand = B's memory ([k,n] row-major = n×k column-major, or [n,k] = k×n when
            // transposed), second = A's memory, output = n×m column-major with leading dimension n.
            CuBlas.Check(CuBlasLt.cublasLtMatrixLayoutCreate(out plan.ALayout, CuBlas.CUDA_R_16BF, (ulong)(transposeB ? k : n), (ulong)(transposeB ? n : k), transposeB ? k : n),
                nameof(CuBlasLt.cublasLtMatrixLayoutCreate));
            CuBlas.Check(CuBlasLt.cublasLtMatrixLayoutCreate(out plan.BLayout, CuBlas.CUDA_R_16BF, (ulong)(transposeA ? m : k), (ulong)(transposeA ? k : m), transposeA ? m : k),
                nameof(CuBlasLt.cublasLtMatrixLayoutCreate));
            CuBlas.Check(CuBlasLt.cublasLtMatrixLayoutCreate(out plan.CLayout, bf16Output ? CuBlas.CUDA_R_16BF : CuBlas.CUDA_R_32F, (ulong)n, (ulong)m, n),
                nameof(CuBlasLt.cublasLtMatrixLayoutCreate));

            CuBlas.Check(CuBlasLt.cublasLtMatmulPreferenceCreate(out var preference), nameof(CuBlasLt.cublasLtMatmulPreferenceCreate));
            try
            {
                var workspace = (ulong)LtWorkspaceBytes;
                CuBlas.Check(CuBlasLt.cublasLtMatmulPreferenceSetAttribute(preference, CuBlasLt.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(ulong)),
                    nameof(CuBlasLt.cublasLtMatmulPreferenceSetAttribute));
                CuBlasLt.HeuristicResult result;
                CuBlas.Check(CuBlasLt.cublasLtMatmulAlgoGetHeuristic(lt, plan.Desc, plan.ALayout, plan.BLayout, plan.CLayout, plan.CLayout, preference, 1, &result, out var found),
                    nameof(CuBlasLt.cublasLtMatmulAlgoGetHeuristic));
                if (found < 1)
                {
                    plan.Dispose();
                    ltPlans[key] = null;
                    return null;
                }

                plan.Algo = result;
            }
            finally
            {
                CuBlasLt.cublasLtMatmulPreferenceDestroy(preference);
            }
        }
        catch
        {
            plan.Dispose();
            throw;
        }

        ltPlans[key] = plan;
        return plan;
    }

    private static void SetDesc(nint desc, int attribute, int value) =>
        CuBlas.Check(CuBlasLt.cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(int)), nameof(CuBlasLt.cublasLtMatmulDescSetAttribute));

    /// <summary>The descriptors and algorithm of one cuBLASLt product shape.</summary>
    private sealed class LtPlan : IDisposable
    {
        public nint Desc;
        public nint ALayout;
        public nint BLayout;
        public nint CLayout;
        public CuBlasLt.HeuristicResult Algo;

        public void Dispose()
        {
            if (Desc != 0) { CuBlasLt.cublasLtMatmulDescDestroy(Desc); }
            if (ALayout != 0) { CuBlasLt.cublasLtMatrixLayoutDestroy(ALayout); }
            if (BLayout != 0) { CuBlasLt.cublasLtMatrixLayoutDestroy(BLayout); }
            if (CLayout != 0) { CuBlasLt.cublasLtMatrixLayoutDestroy(CLayout); }
            Desc = ALayout = BLayout = CLayout = 0;
        }
    }

    public void Dispose()
    {
        foreach (var plan in ltPlans.Values)
        {
            plan?.Dispose();
        }

        ltPlans.Clear();
        ltWorkspace?.Dispose();
        ltHandle?.Dispose();
        cublas.Dispose();
    }
}

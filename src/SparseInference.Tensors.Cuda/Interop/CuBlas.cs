using System.Runtime.InteropServices;

namespace SparseInference.Tensors.Cuda.Interop;

/// <summary>
/// cuBLAS (libcublas.so.13 or .12), native names kept verbatim. Every call returns a
/// <c>cublasStatus_t</c> that goes through <see cref="Check"/>. cuBLAS is column-major.
/// </summary>
internal static unsafe partial class CuBlas
{
    public const string Library = "cublas";

    // cublasOperation_t.
    public const int CUBLAS_OP_N = 0;
    public const int CUBLAS_OP_T = 1;

    // cudaDataType_t (library_types.h).
    public const int CUDA_R_32F = 0;
    public const int CUDA_R_16F = 2;
    public const int CUDA_R_16BF = 14;

    // cublasComputeType_t.
    public const int CUBLAS_COMPUTE_32F = 68;
    public const int CUBLAS_COMPUTE_32F_FAST_TF32 = 77;

    // cublasGemmAlgo_t.
    public const int CUBLAS_GEMM_DEFAULT = -1;

    [LibraryImport(Library)]
    public static partial int cublasCreate_v2(out nint handle);

    [LibraryImport(Library)]
    public static partial int cublasDestroy_v2(nint handle);

    [LibraryImport(Library)]
    public static partial int cublasSetStream_v2(nint handle, nint stream);

    [LibraryImport(Library)]
    public static partial int cublasGetVersion_v2(nint handle, out int version);

    [LibraryImport(Library)]
    public static partial int cublasGemmEx(
        nint handle, int transa, int transb, int m, int n, int k,
        void* alpha, ulong a, int aType, int lda,
        ulong b, int bType, int ldb,
        void* beta, ulong c, int cType, int ldc,
        int computeType, int algo);

    [LibraryImport(Library)]
    public static partial int cublasGemmStridedBatchedEx(
        nint handle, int transa, int transb, int m, int n, int k,
        void* alpha, ulong a, int aType, int lda, long strideA,
        ulong b, int bType, int ldb, long strideB,
        void* beta, ulong c, int cType, int ldc, long strideC,
        int batchCount, int computeType, int algo);

    /// <summary>Throws a <see cref="CudaException"/> naming the call and the cuBLAS status.</summary>
    public static void Check(int status, string call)
    {
        if (status != 0)
        {
            throw new CudaException(call, status, StatusName(status));
        }
    }

    /// <summary>The cublasStatus_t name (cublas_api.h).</summary>
    public static string StatusName(int status) => status switch
    {
        0 => "CUBLAS_STATUS_SUCCESS",
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        16 => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => "cublasStatus_t " + status,
    };
}

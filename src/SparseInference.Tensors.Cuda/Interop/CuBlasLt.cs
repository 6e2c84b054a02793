using System.Runtime.InteropServices;

namespace SparseInference.Tensors.Cuda.Interop;

/// <summary>
/// cuBLASLt (libcublasLt.so.13 or .12), native names kept verbatim: matrix products with a fused epilogue
/// (bias added in the product's store instead of a separate pass over the output). Every call returns a
/// <c>cublasStatus_t</c> that goes through <see cref="CuBlas.Check"/>. Column-major, like cuBLAS.
/// </summary>
internal static unsafe partial class CuBlasLt
{
    public const string Library = "cublasLt";

    // cublasLtMatmulDescAttributes_t.
    public const int CUBLASLT_MATMUL_DESC_TRANSA = 3;
    public const int CUBLASLT_MATMUL_DESC_TRANSB = 4;
    public const int CUBLASLT_MATMUL_DESC_EPILOGUE = 7;
    public const int CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8;

    // cublasLtEpilogue_t.
    public const int CUBLASLT_EPILOGUE_DEFAULT = 1;
    public const int CUBLASLT_EPILOGUE_BIAS = 4;
    public const int CUBLASLT_EPILOGUE_GELU = 32;
    public const int CUBLASLT_EPILOGUE_GELU_BIAS = 36;

    // cublasLtMatmulPreferenceAttributes_t.
    public const int CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;

    /// <summary>cublasLtMatmulHeuristicResult_t: the algorithm (8 × uint64), workspace size, state, waves, 4 reserved ints.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct HeuristicResult
    {
        public fixed ulong Algo[8];
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }

    [LibraryImport(Library)]
    public static partial int cublasLtCreate(out nint handle);

    [LibraryImport(Library)]
    public static partial int cublasLtDestroy(nint handle);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmulDescCreate(out nint desc, int computeType, int scaleType);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmulDescDestroy(nint desc);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmulDescSetAttribute(nint desc, int attribute, void* value, nuint size);

    [LibraryImport(Library)]
    public static partial int cublasLtMatrixLayoutCreate(out nint layout, int type, ulong rows, ulong cols, long ld);

    [LibraryImport(Library)]
    public static partial int cublasLtMatrixLayoutDestroy(nint layout);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmulPreferenceCreate(out nint preference);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmulPreferenceDestroy(nint preference);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmulPreferenceSetAttribute(nint preference, int attribute, void* value, nuint size);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmulAlgoGetHeuristic(
        nint handle, nint desc, nint aDesc, nint bDesc, nint cDesc, nint dDesc, nint preference,
        int requestedAlgoCount, HeuristicResult* results, out int returnedAlgoCount);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmul(
        nint handle, nint desc, void* alpha, ulong a, nint aDesc, ulong b, nint bDesc,
        void* beta, ulong c, nint cDesc, ulong d, nint dDesc,
        void* algo, ulong workspace, nuint workspaceBytes, nint stream);
}

using System.Runtime.InteropServices;

namespace SparseInference.Tensors.Cuda.Interop;

/// <summary>
/// The CUDA driver API (libcuda.so.1), native names kept verbatim. Every call returns a
/// <c>CUresult</c> that goes through <see cref="Check"/>.
/// </summary>
internal static unsafe partial class CudaDriver
{
    /// <summary>Logical library name; <see cref="CudaLibraryResolver"/> maps it to a soname.</summary>
    public const string Library = "cuda";

    public const int CUDA_SUCCESS = 0;
    public const int CUDA_ERROR_NOT_READY = 600;

    // Stream capture errors (cuda.h): a call that cannot be recorded, a capture invalidated by such a call, and the rest of
    // that range.
    public const int CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900;
    public const int CUDA_ERROR_STREAM_CAPTURE_LAST = 908;

    /// <summary>CUstreamCaptureMode: other threads may make unsafe calls (cuMemAlloc) while this stream records.</summary>
    public const int CU_STREAM_CAPTURE_MODE_RELAXED = 2;

    // CUdevice_attribute values used here (cuda.h).
    public const int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    public const int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    public const int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    public const int CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;
    public const int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;

    // CUfunction_attribute.
    public const int CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3;
    public const int CU_FUNC_ATTRIBUTE_NUM_REGS = 4;
    public const int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    public const uint CU_STREAM_NON_BLOCKING = 1;
    public const uint CU_EVENT_DEFAULT = 0;
    public const uint CU_MEMHOSTALLOC_PORTABLE = 1;

    // ---- Initialisation and devices -------------------------------------------------------

    [LibraryImport(Library)]
    public static partial int cuInit(uint flags);

    [LibraryImport(Library)]
    public static partial int cuDriverGetVersion(out int version);

    [LibraryImport(Library)]
    public static partial int cuDeviceGetCount(out int count);

    [LibraryImport(Library)]
    public static partial int cuDeviceGet(out int device, int ordinal);

    [LibraryImport(Library)]
    public static partial int cuDeviceGetName(byte* name, int len, int device);

    [LibraryImport(Library)]
    public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(Library, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial int cuDeviceTotalMem(out nuint bytes, int device);

    // ---- Primary context ------------------------------------------------------------------

    [LibraryImport(Library)]
    public static partial int cuDevicePrimaryCtxRetain(out nint context, int device);

    [LibraryImport(Library, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
    public static partial int cuDevicePrimaryCtxRelease(int device);

    [LibraryImport(Library)]
    public static partial int cuCtxSetCurrent(nint context);

    [LibraryImport(Library)]
    public static partial int cuCtxSynchronize();

    // ---- Memory ---------------------------------------------------------------------------

    [LibraryImport(Library, EntryPoint = "cuMemAlloc_v2")]
    public static partial int cuMemAlloc(out ulong devicePtr, nuint bytes);

    [LibraryImport(Library, EntryPoint = "cuMemFree_v2")]
    public static partial int cuMemFree(ulong devicePtr);

    [LibraryImport(Library, EntryPoint = "cuMemGetInfo_v2")]
    public static partial int cuMemGetInfo(out nuint free, out nuint total);

    [LibraryImport(Library)]
    public static partial int cuMemHostAlloc(out nint hostPtr, nuint bytes, uint flags);

    [LibraryImport(Library)]
    public static partial int cuMemFreeHost(nint hostPtr);

    [LibraryImport(Library, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial int cuMemcpyHtoDAsync(ulong dst, void* src, nuint bytes, nint stream);

    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial int cuMemcpyDtoHAsync(void* dst, ulong src, nuint bytes, nint stream);

    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoDAsync_v2")]
    public static partial int cuMemcpyDtoDAsync(ulong dst, ulong src, nuint bytes, nint stream);

    [LibraryImport(Library)]
    public static partial int cuMemsetD8Async(ulong dst, byte value, nuint count, nint stream);

    [LibraryImport(Library)]
    public static partial int cuMemsetD32Async(ulong dst, uint value, nuint count, nint stream);

    // ---- Streams and events ---------------------------------------------------------------

    [LibraryImport(Library)]
    public static partial int cuStreamCreate(out nint stream, uint flags);

    [LibraryImport(Library, EntryPoint = "cuStreamDestroy_v2")]
    public static partial int cuStreamDestroy(nint stream);

    [LibraryImport(Library)]
    public static partial int cuStreamSynchronize(nint stream);

    [LibraryImport(Library)]
    public static partial int cuEventCreate(out nint evt, uint flags);

    [LibraryImport(Library, EntryPoint = "cuEventDestroy_v2")]
    public static partial int cuEventDestroy(nint evt);

    [LibraryImport(Library)]
    public static partial int cuEventRecord(nint evt, nint stream);

    [LibraryImport(Library)]
    public static partial int cuEventSynchronize(nint evt);

    [LibraryImport(Library)]
    public static partial int cuEventElapsedTime(out float milliseconds, nint start, nint end);

    // ---- Graphs (stream capture) ----------------------------------------------------------

    [LibraryImport(Library, EntryPoint = "cuStreamBeginCapture_v2")]
    public static partial int cuStreamBeginCapture(nint stream, int mode);

    [LibraryImport(Library)]
    public static partial int cuStreamEndCapture(nint stream, out nint graph);

    [LibraryImport(Library)]
    public static partial int cuGraphInstantiateWithFlags(out nint graphExec, nint graph, ulong flags);

    [LibraryImport(Library)]
    public static partial int cuGraphUpload(nint graphExec, nint stream);

    [LibraryImport(Library)]
    public static partial int cuGraphLaunch(nint graphExec, nint stream);

    [LibraryImport(Library)]
    public static partial int cuGraphExecDestroy(nint graphExec);

    [LibraryImport(Library)]
    public static partial int cuGraphDestroy(nint graph);

    // ---- Modules and launches -------------------------------------------------------------

    [LibraryImport(Library)]
    public static partial int cuModuleLoadData(out nint module, void* image);

    [LibraryImport(Library)]
    public static partial int cuModuleUnload(nint module);

    [LibraryImport(Library)]
    public static partial int cuModuleGetFunction(out nint function, nint module, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    [LibraryImport(Library)]
    public static partial int cuFuncSetAttribute(nint function, int attribute, int value);

    [LibraryImport(Library)]
    public static partial int cuFuncGetAttribute(out int value, int attribute, nint function);

    [LibraryImport(Library)]
    public static partial int cuLaunchKernel(
        nint function,
        uint gridDimX, uint gridDimY, uint gridDimZ,
        uint blockDimX, uint blockDimY, uint blockDimZ,
        uint sharedMemBytes, nint stream, void** kernelParams, void** extra);

    // ---- Errors ---------------------------------------------------------------------------

    [LibraryImport(Library)]
    public static partial int cuGetErrorName(int error, out nint name);

    [LibraryImport(Library)]
    public static partial int cuGetErrorString(int error, out nint text);

    /// <summary>Throws a <see cref="CudaException"/> naming the call and the driver's error string.</summary>
    public static void Check(int result, string call)
    {
        if (result != CUDA_SUCCESS)
        {
            throw new CudaException(call, result, Describe(result));
        }
    }

    /// <summary>"CUDA_ERROR_X: text" for a driver status code.</summary>
    public static string Describe(int result)
    {
        string name = cuGetErrorName(result, out var namePtr) == CUDA_SUCCESS && namePtr != 0
            ? Marshal.PtrToStringUTF8(namePtr) ?? "?"
            : "CUresult " + result;
        string text = cuGetErrorString(result, out var textPtr) == CUDA_SUCCESS && textPtr != 0
            ? Marshal.PtrToStringUTF8(textPtr) ?? ""
            : "";
        return text.Length > 0 ? $"{name}: {text}" : name;
    }
}

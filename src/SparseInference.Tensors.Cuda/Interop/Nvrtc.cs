using System.Runtime.InteropServices;

namespace SparseInference.Tensors.Cuda.Interop;

/// <summary>
/// NVRTC, the run-time CUDA C++ compiler (libnvrtc.so.13 or .12), native names kept verbatim.
/// Every call returns an <c>nvrtcResult</c> that goes through <see cref="Check"/>.
/// </summary>
internal static unsafe partial class Nvrtc
{
    public const string Library = "nvrtc";

    public const int NVRTC_SUCCESS = 0;
    public const int NVRTC_ERROR_COMPILATION = 6;

    [LibraryImport(Library)]
    public static partial int nvrtcVersion(out int major, out int minor);

    [LibraryImport(Library)]
    public static partial int nvrtcCreateProgram(
        out nint program, [MarshalAs(UnmanagedType.LPUTF8Str)] string source,
        [MarshalAs(UnmanagedType.LPUTF8Str)] string name, int numHeaders, byte** headers, byte** includeNames);

    [LibraryImport(Library)]
    public static partial int nvrtcDestroyProgram(ref nint program);

    [LibraryImport(Library)]
    public static partial int nvrtcCompileProgram(nint program, int numOptions, byte** options);

    [LibraryImport(Library)]
    public static partial int nvrtcGetCUBINSize(nint program, out nuint size);

    [LibraryImport(Library)]
    public static partial int nvrtcGetCUBIN(nint program, byte* cubin);

    [LibraryImport(Library)]
    public static partial int nvrtcGetPTXSize(nint program, out nuint size);

    [LibraryImport(Library)]
    public static partial int nvrtcGetPTX(nint program, byte* ptx);

    [LibraryImport(Library)]
    public static partial int nvrtcGetProgramLogSize(nint program, out nuint size);

    [LibraryImport(Library)]
    public static partial int nvrtcGetProgramLog(nint program, byte* log);

    [LibraryImport(Library)]
    public static partial nint nvrtcGetErrorString(int result);

    /// <summary>Throws a <see cref="CudaException"/> naming the call and NVRTC's error string.</summary>
    public static void Check(int result, string call)
    {
        if (result != NVRTC_SUCCESS)
        {
            throw new CudaException(call, result, Describe(result));
        }
    }

    public static string Describe(int result) =>
        Marshal.PtrToStringUTF8(nvrtcGetErrorString(result)) ?? "nvrtcResult " + result;
}

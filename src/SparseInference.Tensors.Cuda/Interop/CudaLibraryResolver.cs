using System.Reflection;
using System.Runtime.InteropServices;

namespace SparseInference.Tensors.Cuda.Interop;

/// <summary>
/// Resolves the logical names of <see cref="CudaDriver"/>, <see cref="CuBlas"/> and <see cref="Nvrtc"/>
/// to sonames, CUDA 13 first, then 12. A library that cannot be found is reported with what to
/// install, so that the backend says it is unavailable instead of the process failing on a call.
/// </summary>
internal static class CudaLibraryResolver
{
    /// <summary>Colon-separated directories searched before the loader's default path.</summary>
    public const string LibraryDirectoryVariable = "SPARSEINFERENCE_CUDA_LIB_DIR";

    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, nint> Loaded = new(StringComparer.Ordinal);
    private static bool registered;

    /// <summary>Sonames probed for each logical name, newest first.</summary>
    public static IReadOnlyDictionary<string, string[]> Candidates { get; } = new Dictionary<string, string[]>
    {
        [CudaDriver.Library] = ["libcuda.so.1", "libcuda.so"],
        [CuBlas.Library] = ["libcublas.so.13", "libcublas.so.12"],
        [CuBlasLt.Library] = ["libcublasLt.so.13", "libcublasLt.so.12"],
        [Nvrtc.Library] = ["libnvrtc.so.13", "libnvrtc.so.12"],
    };

    /// <summary>What to install when a library is missing.</summary>
    public static IReadOnlyDictionary<string, string> InstallHints { get; } = new Dictionary<string, string>
    {
        [CudaDriver.Library] = "the NVIDIA driver's user-space library libcuda.so.1 (install the NVIDIA driver, e.g. Debian's 'libcuda1' or the driver from NVIDIA; in a container, run it with the NVIDIA container toolkit)",
        [CuBlas.Library] = "cuBLAS from CUDA 13 or 12 (libcublas.so.13/.12: the 'libcublas-13-0' package of NVIDIA's CUDA repository, or the 'nvidia-cublas' wheel)",
        [CuBlasLt.Library] = "cuBLASLt from CUDA 13 or 12 (libcublasLt.so.13/.12, shipped with cuBLAS: the 'libcublas-13-0' package of NVIDIA's CUDA repository, or the 'nvidia-cublas' wheel)",
        [Nvrtc.Library] = "NVRTC from CUDA 13 or 12 (libnvrtc.so.13/.12 with its libnvrtc-builtins: the 'cuda-nvrtc-13-0' package of NVIDIA's CUDA repository, or the 'nvidia-cuda-nvrtc' wheel)",
    };

    /// <summary>Installs the resolver for this assembly once.</summary>
    public static void Register()
    {
        lock (Gate)
        {
            if (registered)
            {
                return;
            }

            NativeLibrary.SetDllImportResolver(typeof(CudaLibraryResolver).Assembly, Resolve);
            registered = true;
        }
    }

    /// <summary>
    /// Loads every library; returns null when all load, otherwise a message naming each missing
    /// library and what to install.
    /// </summary>
    public static string? Probe()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return $"CUDA backend unavailable: it runs on Linux x64 only (this is {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture})";
        }

        Register();
        return Describe(Candidates.Keys.Where(name => TryLoad(name) == 0));
    }

    /// <summary>
    /// Probes arbitrary sonames without registering them (tests use a name that cannot exist);
    /// the message has the same form as <see cref="Probe()"/>'s.
    /// </summary>
    internal static string? Probe(IReadOnlyDictionary<string, string[]> candidates)
    {
        var missing = candidates.Where(c => !c.Value.Any(CanLoad)).Select(c => c.Key);
        return Describe(missing, candidates);
    }

    private static bool CanLoad(string soname)
    {
        if (!NativeLibrary.TryLoad(soname, out var handle))
        {
            return false;
        }

        NativeLibrary.Free(handle);
        return true;
    }

    private static string? Describe(IEnumerable<string> missingNames, IReadOnlyDictionary<string, string[]>? candidates = null)
    {
        candidates ??= Candidates;
        var missing = new List<string>();
        foreach (var name in missingNames)
        {
            var hint = InstallHints.TryGetValue(name, out var h) ? h : "the library that provides it";
            missing.Add($"{string.Join(" or ", candidates[name])} not found: install {hint}");
        }

        if (missing.Count == 0)
        {
            return null;
        }

        return "CUDA backend unavailable: " + string.Join("; ", missing)
            + $". Libraries outside the loader's path can be named with {LibraryDirectoryVariable}=dir1:dir2.";
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        Candidates.ContainsKey(libraryName) ? TryLoad(libraryName) : 0;

    private static nint TryLoad(string name)
    {
        lock (Gate)
        {
            if (Loaded.TryGetValue(name, out var cached) && cached != 0)
            {
                return cached;
            }

            nint handle = 0;
            foreach (var soname in Candidates[name])
            {
                foreach (var dir in SearchDirectories())
                {
                    if (NativeLibrary.TryLoad(Path.Combine(dir, soname), out handle))
                    {
                        break;
                    }
                }

                if (handle == 0)
                {
                    NativeLibrary.TryLoad(soname, out handle);
                }

                if (handle != 0)
                {
                    break;
                }
            }

            Loaded[name] = handle;
            return handle;
        }
    }

    private static IEnumerable<string> SearchDirectories()
    {
        var fromEnv = Environment.GetEnvironmentVariable(LibraryDirectoryVariable);
        if (!string.IsNullOrEmpty(fromEnv))
        {
            foreach (var dir in fromEnv.Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                yield return dir;
            }
        }

        var cudaPath = Environment.GetEnvironmentVariable("CUDA_PATH");
        if (!string.IsNullOrEmpty(cudaPath))
        {
            yield return Path.Combine(cudaPath, "lib64");
        }

        yield return "/usr/local/cuda/lib64";
    }
}

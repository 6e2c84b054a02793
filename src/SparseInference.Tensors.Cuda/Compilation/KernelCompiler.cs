using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using SparseInference.Tensors.Cuda.Interop;

namespace SparseInference.Tensors.Cuda.Compilation;

/// <summary>
/// Compiles the embedded .cu sources with NVRTC for the device's architecture and keeps the CUBIN
/// images on disk, keyed by <see cref="KernelCacheKey"/>.
/// </summary>
internal sealed class KernelCompiler
{
    private readonly int computeMajor;
    private readonly int computeMinor;
    private readonly string cacheDirectory;

    public KernelCompiler(int computeMajor, int computeMinor, string cacheDirectory)
    {
        this.computeMajor = computeMajor;
        this.computeMinor = computeMinor;
        this.cacheDirectory = cacheDirectory;
        Nvrtc.Check(Nvrtc.nvrtcVersion(out var major, out var minor), nameof(Nvrtc.nvrtcVersion));
        NvrtcMajor = major;
        NvrtcMinor = minor;
    }

    public int NvrtcMajor { get; }

    public int NvrtcMinor { get; }

    /// <summary>Compilations done (not served from the disk cache), for diagnostics.</summary>
    public int Compilations { get; private set; }

    /// <summary>
    /// Reads an embedded kernel source, e.g. "attention.cu", with each <c>#include "x.cuh"</c> line replaced by that
    /// embedded file: NVRTC compiles without include paths, and the spliced text is what the cache key hashes.
    /// </summary>
    public static string ReadSource(string fileName)
    {
        var resource = "SparseInference.Tensors.Cuda.Kernels." + fileName;
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"Embedded kernel source '{resource}' is missing from the assembly.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var lines = reader.ReadToEnd().Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd();
            if (line.StartsWith("#include \"", StringComparison.Ordinal) && line.EndsWith(".cuh\"", StringComparison.Ordinal))
            {
                lines[i] = ReadSource(line["#include \"".Length..^1]);
            }
        }

        return string.Join('\n', lines);
    }

    /// <summary>
    /// The marker line by which a source asks for the architecture-specific target of its device
    /// (<c>sm_90a</c> on compute capability 9.0: wgmma, setmaxnreg), which runs on that architecture only.
    /// </summary>
    public const string ArchSpecificMarker = "// kernel-target: arch-specific";

    /// <summary>Whether <paramref name="source"/> carries <see cref="ArchSpecificMarker"/>.</summary>
    public static bool RequestsArchSpecificTarget(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return source.Contains(ArchSpecificMarker, StringComparison.Ordinal);
    }

    /// <summary>
    /// The NVRTC target for a source on a device: <c>sm_XY</c>, or <c>sm_XYa</c> when the source asks for the
    /// architecture-specific target and the device has one (compute capability 9.0; others get <c>sm_XY</c>).
    /// </summary>
    public static string TargetFor(string source, int computeMajor, int computeMinor) =>
        RequestsArchSpecificTarget(source) && computeMajor == 9 && computeMinor == 0
            ? $"sm_{computeMajor}{computeMinor}a"
            : $"sm_{computeMajor}{computeMinor}";

    /// <summary>Returns the CUBIN for a source and defines, compiling only on a cache miss.</summary>
    public byte[] GetImage(string kernelName, string source, IReadOnlyList<string> defines)
    {
        // The target is one of the options, so it is part of the cache key.
        var options = new List<string>
        {
            $"--gpu-architecture={TargetFor(source, computeMajor, computeMinor)}",
            "--std=c++17",
            "-default-device",
        };
        options.AddRange(defines.Select(d => "-D" + d));

        var file = Path.Combine(cacheDirectory, KernelCacheKey.Compute(kernelName, source, options, computeMajor, computeMinor, NvrtcMajor, NvrtcMinor));
        try
        {
            if (File.Exists(file))
            {
                return File.ReadAllBytes(file);
            }
        }
        catch (IOException)
        {
            // An unreadable cache entry is rebuilt below.
        }

        var image = Compile(kernelName, source, options);
        Compilations++;
        TryStore(file, image);
        return image;
    }

    private static unsafe byte[] Compile(string kernelName, string source, List<string> options)
    {
        Nvrtc.Check(Nvrtc.nvrtcCreateProgram(out var program, source, kernelName + ".cu", 0, null, null), nameof(Nvrtc.nvrtcCreateProgram));
        var optionPtrs = options.Select(o => Marshal.StringToCoTaskMemUTF8(o)).ToArray();
        try
        {
            int result;
            fixed (nint* p = optionPtrs)
            {
                result = Nvrtc.nvrtcCompileProgram(program, optionPtrs.Length, (byte**)p);
            }

            if (result != Nvrtc.NVRTC_SUCCESS)
            {
                var log = ReadLog(program);
                throw new CudaException(
                    $"nvrtcCompileProgram failed for {kernelName}.cu ({string.Join(' ', options)}): {Nvrtc.Describe(result)}{Environment.NewLine}{log}");
            }

            Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, out var size), nameof(Nvrtc.nvrtcGetCUBINSize));
            var image = new byte[(int)size];
            fixed (byte* dst = image)
            {
                Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, dst), nameof(Nvrtc.nvrtcGetCUBIN));
            }

            return image;
        }
        finally
        {
            foreach (var p in optionPtrs)
            {
                Marshal.FreeCoTaskMem(p);
            }

            Nvrtc.nvrtcDestroyProgram(ref program);
        }
    }

    private static unsafe string ReadLog(nint program)
    {
        if (Nvrtc.nvrtcGetProgramLogSize(program, out var size) != Nvrtc.NVRTC_SUCCESS || size <= 1)
        {
            return "(no compiler log)";
        }

        var log = new byte[(int)size];
        fixed (byte* p = log)
        {
            Nvrtc.nvrtcGetProgramLog(program, p);
        }

        return Encoding.UTF8.GetString(log, 0, log.Length - 1);
    }

    private static void TryStore(string file, byte[] image)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            var temp = file + "." + Environment.ProcessId + ".tmp";
            File.WriteAllBytes(temp, image);
            File.Move(temp, file, overwrite: true);
        }
        catch (IOException)
        {
            // A read-only or full cache only costs a recompilation next time.
        }
        catch (UnauthorizedAccessException)
        {
            // Same as above.
        }
    }
}

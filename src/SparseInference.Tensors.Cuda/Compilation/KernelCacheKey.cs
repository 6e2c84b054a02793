using System.Security.Cryptography;
using System.Text;

namespace SparseInference.Tensors.Cuda.Compilation;

/// <summary>
/// Names a compiled kernel image on disk: a change of source, options, target architecture or
/// compiler version gives a different key, so a stale image is never loaded.
/// </summary>
public static class KernelCacheKey
{
    /// <summary>Variable that overrides the cache directory.</summary>
    public const string CacheDirectoryVariable = "SPARSEINFERENCE_KERNEL_CACHE";

    /// <summary>File name for one compiled image: "{name}-sm{arch}-{first 16 hex digits of SHA-256}.cubin".</summary>
    public static string Compute(string kernelName, string source, IReadOnlyList<string> options, int computeMajor, int computeMinor, int nvrtcMajor, int nvrtcMinor)
    {
        ArgumentException.ThrowIfNullOrEmpty(kernelName);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        var text = new StringBuilder()
            .Append(source).Append('\0')
            .AppendJoin('\u0001', options).Append('\0')
            .Append("sm_").Append(computeMajor).Append(computeMinor).Append('\0')
            .Append("nvrtc ").Append(nvrtcMajor).Append('.').Append(nvrtcMinor)
            .ToString();
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(text));
        return $"{kernelName}-sm{computeMajor}{computeMinor}-{Convert.ToHexStringLower(hash.AsSpan(0, 8))}.cubin";
    }

    /// <summary>
    /// The cache directory: <see cref="CacheDirectoryVariable"/>, else
    /// $XDG_CACHE_HOME/sparseinference/kernels, else ~/.cache/sparseinference/kernels.
    /// </summary>
    public static string DefaultDirectory(Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        var explicitDir = getEnvironment(CacheDirectoryVariable);
        if (!string.IsNullOrEmpty(explicitDir))
        {
            return explicitDir;
        }

        var xdg = getEnvironment("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg)
            ? xdg
            : Path.Combine(getEnvironment("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "sparseinference", "kernels");
    }
}

using System.Text;

namespace SparseInference.Serving.Variants.Routing;

/// <summary>
/// A hash that is the same in every process and on every replica (string.GetHashCode is randomised per
/// process): FNV-1a 64 over UTF-8, then the MurmurHash3 64-bit finaliser so that keys differing only in
/// their last characters still spread over the whole range.
/// </summary>
public static class StableHash
{
    private const ulong FnvOffsetBasis = 0xcbf29ce484222325UL;
    private const ulong FnvPrime = 0x100000001b3UL;

    /// <summary>Plain FNV-1a 64 of the UTF-8 bytes.</summary>
    public static ulong Fnv1a64(ReadOnlySpan<byte> bytes)
    {
        var hash = FnvOffsetBasis;
        foreach (var b in bytes)
        {
            hash ^= b;
            hash *= FnvPrime;
        }

        return hash;
    }

    /// <summary>MurmurHash3 fmix64: spreads every input bit over every output bit.</summary>
    public static ulong Mix(ulong h)
    {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdUL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53UL;
        h ^= h >> 33;
        return h;
    }

    /// <summary>Hash of "experiment\0key"; the separator keeps ("ab","c") and ("a","bc") apart.</summary>
    public static ulong Of(string experiment, string key)
    {
        var length = Encoding.UTF8.GetByteCount(experiment) + 1 + Encoding.UTF8.GetByteCount(key);
        var buffer = length <= 512 ? stackalloc byte[length] : new byte[length];
        var written = Encoding.UTF8.GetBytes(experiment, buffer);
        buffer[written++] = 0;
        Encoding.UTF8.GetBytes(key, buffer[written..]);
        return Mix(Fnv1a64(buffer));
    }

    /// <summary>A point in [0, 1) from the top 53 bits of the hash (the exact mantissa width of a double).</summary>
    public static double UnitInterval(string experiment, string key) => (Of(experiment, key) >> 11) * (1.0 / (1UL << 53));
}

using System.Text;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// docs/variants.md's sticky assignment, written out independently of the server: FNV-1a 64 of UTF-8
/// "experiment\0key", MurmurHash3 fmix64, the top 53 bits as a point in [0, 1) mapped onto the cumulative weights
/// in split order.
/// </summary>
public static class DocumentedStickyHash
{
    public static double Point(string experiment, string key)
    {
        var hash = 0xcbf29ce484222325UL;
        foreach (var b in Encoding.UTF8.GetBytes(experiment + "\0" + key))
        {
            hash ^= b;
            hash *= 0x100000001b3UL;
        }

        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        hash *= 0xc4ceb9fe1a85ec53UL;
        hash ^= hash >> 33;
        return (hash >> 11) * (1.0 / (1UL << 53));
    }

    public static string Variant(string experiment, string key, IReadOnlyList<(string Variant, double Weight)> split)
    {
        var point = Point(experiment, key) * split.Sum(s => s.Weight);
        var cumulative = 0.0;
        foreach (var (variant, weight) in split)
        {
            cumulative += weight;
            if (point < cumulative)
            {
                return variant;
            }
        }

        return split[^1].Variant;
    }
}

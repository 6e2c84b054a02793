using System.Collections.Concurrent;

namespace SparseInference.Models.Attention;

/// <summary>
/// Caches static block selections per (pattern, sparsity, block size, global blocks, L, seed, layer).
/// Bounded: request seeds and lengths are client-chosen, so the cache is dropped when it grows past its limit.
/// </summary>
internal sealed class LayoutCache(int capacity = 4096)
{
    private readonly ConcurrentDictionary<Key, KeyBlockSelection> _entries = new();

    private readonly record struct Key(string Pattern, double Sparsity, int BlockSize, int GlobalBlocks, int Length, ulong Seed, int Layer);

    public int Count => _entries.Count;

    public KeyBlockSelection Get(IStaticBlockPattern pattern, AttentionSpec spec, int length, int layer)
    {
        int layerKey = pattern.DependsOnLayer ? layer : -1;
        ulong seedKey = pattern.DependsOnLayer ? spec.Seed : 0;
        var key = new Key(pattern.Name, spec.Sparsity, spec.BlockSize, spec.GlobalBlocks, length, seedKey, layerKey);
        if (_entries.TryGetValue(key, out var hit))
        {
            return hit;
        }

        if (_entries.Count >= capacity)
        {
            _entries.Clear();
        }

        var selection = pattern.Select(new BlockGeometry(length, spec.BlockSize), spec, layer);
        return _entries.GetOrAdd(key, selection);
    }
}

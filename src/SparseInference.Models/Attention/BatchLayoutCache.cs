using System.Collections.Concurrent;
using SparseInference.Tensors;

namespace SparseInference.Models.Attention;

/// <summary>
/// Caches the block layout of a static pattern for a whole padded batch, per (spec, layer, T, valid lengths), so a
/// forward of a batch shape seen before builds nothing. Bounded like <see cref="LayoutCache"/>: lengths are
/// client-chosen, so the cache is dropped when it grows past its limit.
/// </summary>
internal sealed class BatchLayoutCache(int capacity = 1024)
{
    private readonly ConcurrentDictionary<Key, BlockLayout> _entries = new();

    public int Count => _entries.Count;

    public BlockLayout Get(AttentionSpec spec, int layer, int time, int[] lengths, Func<BlockLayout> build)
    {
        var key = new Key(spec, layer, time, lengths);
        if (_entries.TryGetValue(key, out var hit))
        {
            return hit;
        }

        if (_entries.Count >= capacity)
        {
            _entries.Clear();
        }

        // The caller may reuse its lengths array: the key keeps a copy.
        return _entries.GetOrAdd(key with { Lengths = (int[])lengths.Clone() }, build());
    }

    private readonly record struct Key(AttentionSpec Spec, int Layer, int Time, int[] Lengths)
    {
        public bool Equals(Key other) =>
            Layer == other.Layer && Time == other.Time && Spec == other.Spec && Lengths.AsSpan().SequenceEqual(other.Lengths);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.Add(Spec);
            hash.Add(Layer);
            hash.Add(Time);
            foreach (int l in Lengths)
            {
                hash.Add(l);
            }

            return hash.ToHashCode();
        }
    }
}

using System.Runtime.InteropServices;
using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// The block layouts and valid lengths of attention calls, uploaded once per distinct content (the encoder builds an
/// equal layout for every layer and forward of the same pattern and lengths) and kept on the device, at most
/// <see cref="Capacity"/> of each. An entry is shared: a recorded forward that read it holds its own reference, so
/// clearing the cache (full, or after an unload) frees only what no recording still replays.
/// </summary>
internal sealed class DeviceAttentionCache(CudaDevice gpu) : IDisposable
{
    private const int Capacity = 64;
    private readonly Dictionary<int, List<Shared<DeviceBlockLayout>>> layouts = [];
    private readonly Dictionary<string, Shared<CudaBuffer>> lengths = new(StringComparer.Ordinal);
    private int layoutCount;

    /// <summary>The layout on the device with its work plans; the caller retains it if it must outlive the cache's reference.</summary>
    public Shared<DeviceBlockLayout> Layout(BlockLayout layout)
    {
        var hash = new HashCode();
        hash.Add(layout.BlockSize);
        hash.Add(layout.Batch);
        hash.Add(layout.Heads);
        hash.Add(layout.QueryBlocks);
        hash.Add(layout.SharedAcrossHeads);
        hash.AddBytes(MemoryMarshal.AsBytes(layout.RowOffsets));
        hash.AddBytes(MemoryMarshal.AsBytes(layout.KeyBlockIndices));
        var key = hash.ToHashCode();
        if (layouts.TryGetValue(key, out var bucket))
        {
            foreach (var candidate in bucket)
            {
                var c = candidate.Value.Layout.Layout;
                if (ReferenceEquals(c, layout) || (c.BlockSize == layout.BlockSize && c.Batch == layout.Batch && c.Heads == layout.Heads
                    && c.QueryBlocks == layout.QueryBlocks && c.SharedAcrossHeads == layout.SharedAcrossHeads
                    && layout.RowOffsets.SequenceEqual(c.RowOffsets) && layout.KeyBlockIndices.SequenceEqual(c.KeyBlockIndices)))
                {
                    return candidate;
                }
            }
        }

        if (layoutCount >= Capacity)
        {
            ClearLayouts();
        }

        var uploaded = new Shared<DeviceBlockLayout>(gpu.Attention.Upload(new CsrBlockLayout(layout)));
        if (!layouts.TryGetValue(key, out bucket))
        {
            layouts[key] = bucket = [];
        }

        bucket.Add(uploaded);
        layoutCount++;
        return uploaded;
    }

    /// <summary>Valid lengths on the device, uploaded once per distinct list.</summary>
    public Shared<CudaBuffer> Lengths(ReadOnlySpan<int> validLengths)
    {
        var key = string.Join(',', validLengths.ToArray());
        if (lengths.TryGetValue(key, out var cached))
        {
            return cached;
        }

        if (lengths.Count >= Capacity)
        {
            ClearLengths();
        }

        var buffer = gpu.Allocate(validLengths.Length * 4L, MemoryCategory.Workspace);
        try
        {
            gpu.Upload(validLengths, buffer);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }

        var entry = new Shared<CudaBuffer>(buffer);
        lengths[key] = entry;
        return entry;
    }

    /// <summary>Drops the cache's references (entries a recording still holds stay until it is disposed).</summary>
    public void Clear()
    {
        ClearLayouts();
        ClearLengths();
    }

    private void ClearLayouts()
    {
        foreach (var bucket in layouts.Values)
        {
            foreach (var l in bucket)
            {
                l.Release();
            }
        }

        layouts.Clear();
        layoutCount = 0;
    }

    private void ClearLengths()
    {
        foreach (var b in lengths.Values)
        {
            b.Release();
        }

        lengths.Clear();
    }

    public void Dispose() => Clear();
}

/// <summary>Device memory with several owners (the cache and the recordings that read it): freed when the last releases it.</summary>
internal sealed class Shared<T>(T value) : IRetained
    where T : IDisposable
{
    private int references = 1;

    public T Value { get; } = value;

    /// <summary>One more owner; it calls <see cref="Release"/> when done.</summary>
    public Shared<T> Retain()
    {
        if (Interlocked.Increment(ref references) <= 1)
        {
            throw new ObjectDisposedException(typeof(T).Name, "A released entry cannot be retained again.");
        }

        return this;
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref references) == 0)
        {
            Value.Dispose();
        }
    }
}

/// <summary>Something a recorded forward keeps alive until it is disposed.</summary>
internal interface IRetained
{
    void Release();
}

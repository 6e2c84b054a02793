using System.Runtime.InteropServices;
using SparseInference.Models.Attention;
using SparseInference.Models.Configuration;
using SparseInference.Tensors;

namespace SparseInference.Models;

/// <summary>
/// The recorded forwards of one model on a backend that records them (<see cref="IForwardRecorder"/>, on a GPU: CUDA
/// graphs). A forward shape is (batch bucket, length, attention spec), the bucket the next power of two of the batch: the
/// first forward of a shape runs as usual on the bucket's padded batch (which compiles its kernels, plans its products
/// and uploads its layouts and lengths), the second is recorded with a workspace of its own, and every later one copies
/// its input into the recording's staging, replays it and reads the output back. At most
/// <see cref="IForwardRecorder.MaxRecordedForwards"/> recordings are kept (the least recently used goes first); all go
/// when the model is unloaded.
/// <para>
/// Recorded: continuous inputs, dense and static block patterns, per-timestep heads, every sequence of the batch as long
/// as the batch (fixed windows), and workspaces up to <see cref="WorkspacePool.MaxPooledBytes"/>. Anything else, and a
/// shape whose recording failed, runs as usual.
/// </para>
/// </summary>
internal sealed class RecordedForwards : IDisposable
{
    /// <summary>Runs the encoder over views of a workspace (input rows in place), returning the pairs computed.</summary>
    public delegate long Encoder(SequenceViews views, int[] lengths, int time, IAttentionPattern pattern, AttentionSpec spec);

    /// <summary>The usual forward, for the first forward of a shape.</summary>
    public delegate ForwardResult Eager(ForwardInput input, int[] lengths, IAttentionPattern pattern, AttentionSpec spec);

    private readonly IForwardRecorder _recorder;
    private readonly IComputeBackend _backend;
    private readonly ModelConfig _config;
    private readonly Encoder _encode;
    private readonly Dictionary<Key, Entry> _entries = [];
    private readonly Lock _gate = new();
    private long _clock;
    private bool _disposed;

    public RecordedForwards(IForwardRecorder recorder, IComputeBackend backend, ModelConfig config, Encoder encode)
    {
        _recorder = recorder;
        _backend = backend;
        _config = config;
        _encode = encode;
    }

    /// <summary>Recordings held now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Values.Count(e => e.Forward is not null);
            }
        }
    }

    private readonly record struct Key(int Bucket, int Time, AttentionSpec Spec);

    private sealed class Entry
    {
        public int Sightings;
        public bool Failed;
        public long LastUse;
        public EncoderWorkspace? Workspace;
        public IRecordedForward? Forward;
        public long PairsPerSequence;

        public void Drop()
        {
            Forward?.Dispose();
            Workspace?.Dispose();
            Forward = null;
            Workspace = null;
        }
    }

    /// <summary>The batch a shape is recorded for: the next power of two.</summary>
    internal static int Bucket(int batch) => (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)batch);

    /// <summary>
    /// Runs the forward through a recording when its shape qualifies (see the class summary); false, having done
    /// nothing, otherwise. Concurrent callers do not wait for each other here: a caller that finds another inside runs
    /// as usual.
    /// </summary>
    public bool TryForward(ForwardInput input, int[] lengths, IAttentionPattern pattern, AttentionSpec spec, Eager eager, out ForwardResult result)
    {
        result = null!;
        if (!Qualifies(input, lengths, pattern))
        {
            return false;
        }

        var bucket = Bucket(input.Batch);
        if (EncoderWorkspace.BytesFor(_config, bucket * input.Time, _backend.ResidualDType) > WorkspacePool.MaxPooledBytes || !_gate.TryEnter())
        {
            return false;
        }

        try
        {
            if (_disposed)
            {
                return false;
            }

            var key = new Key(bucket, input.Time, spec);
            if (!_entries.TryGetValue(key, out var entry))
            {
                EvictSightings();
                _entries[key] = entry = new Entry();
            }

            entry.LastUse = ++_clock;
            if (entry.Failed)
            {
                return false;
            }

            if (entry.Forward is null)
            {
                if (entry.Sightings++ == 0)
                {
                    result = Sliced(eager(Padded(input, bucket), Full(bucket, input.Time), pattern, spec), input.Batch, bucket);
                    return true;
                }

                if (!Record(entry, key, pattern, spec))
                {
                    entry.Failed = true;
                    return false;
                }

                EvictRecordings();
            }

            result = Replay(entry, input);
            return true;
        }
        finally
        {
            _gate.Exit();
        }
    }

    private bool Qualifies(ForwardInput input, int[] lengths, IAttentionPattern pattern)
    {
        if (_config.InputKind != InputKind.Continuous || _config.Head == HeadKind.Classification
            || pattern.Kind is not (AttentionPatternKind.Dense or AttentionPatternKind.StaticBlocks))
        {
            return false;
        }

        foreach (var length in lengths)
        {
            if (length != input.Time)
            {
                return false;
            }
        }

        return true;
    }

    private bool Record(Entry entry, Key key, IAttentionPattern pattern, AttentionSpec spec)
    {
        var workspace = new EncoderWorkspace(_backend, _config, key.Bucket * key.Time);
        try
        {
            var views = workspace.Views(key.Bucket, key.Time).Full;
            var lengths = Full(key.Bucket, key.Time);
            long pairs = 0;
            var forward = _recorder.Record(views.Values!, views.Head, () => pairs = _encode(views, lengths, key.Time, pattern, spec));
            if (forward is null)
            {
                workspace.Dispose();
                return false;
            }

            entry.Workspace = workspace;
            entry.Forward = forward;
            entry.PairsPerSequence = pairs / key.Bucket;
            return true;
        }
        catch
        {
            workspace.Dispose();
            throw;
        }
    }

    private ForwardResult Replay(Entry entry, ForwardInput input)
    {
        var forward = entry.Forward!;
        var staged = MemoryMarshal.Cast<byte, float>(forward.Input);
        var values = input.Values!;
        values.CopyTo(staged);
        staged[values.Length..].Clear();
        forward.Run();
        var outputs = input.Batch * input.Time * _config.OutputDim;
        var output = MemoryMarshal.Cast<byte, float>(forward.Output)[..outputs].ToArray();
        return new ForwardResult
        {
            Output = output,
            Shape = [input.Batch, input.Time, _config.OutputDim],
            ComputedPairs = entry.PairsPerSequence * input.Batch,
            DensePairs = (long)input.Batch * input.Time * input.Time * _config.NLayers * _config.NHeads,
        };
    }

    /// <summary>The input padded with zero sequences to <paramref name="bucket"/>.</summary>
    private ForwardInput Padded(ForwardInput input, int bucket)
    {
        if (bucket == input.Batch)
        {
            return input;
        }

        var values = new float[(long)bucket * input.Time * _config.InputChannels];
        input.Values!.CopyTo(values, 0);
        return new ForwardInput { Batch = bucket, Time = input.Time, Values = values, Lengths = Full(bucket, input.Time) };
    }

    /// <summary>The first <paramref name="batch"/> sequences of a bucket's result (every sequence computes the same pairs).</summary>
    private ForwardResult Sliced(ForwardResult full, int batch, int bucket)
    {
        if (batch == bucket)
        {
            return full;
        }

        var time = full.Shape[1];
        return new ForwardResult
        {
            Output = full.Output.AsSpan(0, batch * time * _config.OutputDim).ToArray(),
            Shape = [batch, time, _config.OutputDim],
            ComputedPairs = full.ComputedPairs / bucket * batch,
            DensePairs = full.DensePairs / bucket * batch,
        };
    }

    private static int[] Full(int batch, int time)
    {
        var lengths = new int[batch];
        Array.Fill(lengths, time);
        return lengths;
    }

    /// <summary>Keeps at most MaxRecordedForwards recordings: the least recently used go.</summary>
    private void EvictRecordings()
    {
        var recorded = _entries.Where(e => e.Value.Forward is not null).OrderBy(e => e.Value.LastUse).ToList();
        for (var i = 0; i < recorded.Count - _recorder.MaxRecordedForwards; i++)
        {
            recorded[i].Value.Drop();
            _entries.Remove(recorded[i].Key);
        }
    }

    /// <summary>Shapes seen but not recorded are forgotten beyond a few times the recordings kept, oldest first.</summary>
    private void EvictSightings()
    {
        var limit = 4 * Math.Max(1, _recorder.MaxRecordedForwards);
        if (_entries.Count < limit)
        {
            return;
        }

        foreach (var (key, entry) in _entries.Where(e => e.Value.Forward is null).OrderBy(e => e.Value.LastUse).Take(_entries.Count - limit + 1).ToList())
        {
            _entries.Remove(key);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            foreach (var entry in _entries.Values)
            {
                entry.Drop();
            }

            _entries.Clear();
        }
    }
}

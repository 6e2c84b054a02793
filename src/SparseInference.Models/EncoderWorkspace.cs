using System.Collections.Concurrent;
using SparseInference.Models.Configuration;
using SparseInference.Tensors;

namespace SparseInference.Models;

/// <summary>
/// The activations of one forward on the backend (input, residual stream, normalised rows, qkv, attention output,
/// feed-forward hidden, head output), sized for up to <see cref="Capacity"/> rows and reused by later forwards, so a
/// forward allocates no backend memory. The residual stream is stored in the backend's
/// <see cref="IComputeBackend.ResidualDType"/> (F32 on the CPU; BF16 on a GPU computing as a BF16 model); every other
/// activation is F32. Used by one forward at a time (see <see cref="WorkspacePool"/>).
/// </summary>
internal sealed class EncoderWorkspace : IDisposable
{
    private readonly ModelConfig _config;
    private readonly Tensor? _values;
    private readonly Tensor? _ids;
    private readonly Tensor _x;
    private readonly Tensor _h;
    private readonly Tensor _qkv;
    private readonly Tensor _attended;
    private readonly Tensor _hidden;
    private readonly Tensor _head;
    private WorkspaceViews? _views;

    public EncoderWorkspace(IComputeBackend backend, ModelConfig config, int capacity)
    {
        _config = config;
        Capacity = capacity;
        ResidualDType = backend.ResidualDType;
        if (ResidualDType is not (DType.F32 or DType.BF16))
        {
            throw new NotSupportedException($"Backend '{backend.Name}' reports residual dtype {ResidualDType}; expected F32 or BF16.");
        }

        int d = config.DModel;
        var owned = new List<Tensor>();
        try
        {
            Tensor Add(Tensor t)
            {
                owned.Add(t);
                return t;
            }

            // Not zeroed: a forward writes every row it reads (the input rows are uploaded, padding included, and each op
            // writes its whole output before the next reads it), and a long sequence's workspace is made anew per
            // forward, where zeroing would be a pass over all of it (0.67 GB at batch 8 × T 4096, d_model 512).
            Tensor F32(int columns) => Add(backend.Allocate(new Shape(capacity, columns), DType.F32, zeroed: false));
            if (config.InputKind == InputKind.Continuous)
            {
                _values = F32(config.InputChannels);
            }
            else
            {
                _ids = Add(backend.Allocate(new Shape(capacity), DType.I32, zeroed: false));
            }

            _x = Add(backend.Allocate(new Shape(capacity, d), ResidualDType, zeroed: false));
            _h = F32(d);
            _qkv = F32(3 * d);
            _attended = F32(d);
            _hidden = F32(config.DFf);
            _head = F32(config.OutputDim);
        }
        catch
        {
            owned.ForEach(t => t.Dispose());
            throw;
        }

        Bytes = BytesFor(config, capacity, ResidualDType);
    }

    /// <summary>Backend memory a workspace of <paramref name="capacity"/> rows holds.</summary>
    public static long BytesFor(ModelConfig config, int capacity, DType residualDType) =>
        (((long)capacity * (config.InputKind == InputKind.Continuous ? config.InputChannels : 1)
          + (long)capacity * (5L * config.DModel + config.DFf + config.OutputDim)) * sizeof(float))
        + ((long)capacity * config.DModel * residualDType.SizeInBytes());

    /// <summary>The dtype of the residual stream <see cref="SequenceViews.X"/> (the backend's at allocation).</summary>
    public DType ResidualDType { get; }

    /// <summary>Rows (batch × time) the workspace holds.</summary>
    public int Capacity { get; }

    /// <summary>Backend memory held.</summary>
    public long Bytes { get; }

    /// <summary>Views of the first batch·time rows shaped for a [batch, time] forward; kept while the shape repeats.</summary>
    public WorkspaceViews Views(int batch, int time)
    {
        if (_views is { } v && v.Full.Count == batch && v.Time == time)
        {
            return v;
        }

        _views = new WorkspaceViews(this, time, Range(0, batch, time));
        return _views;
    }

    /// <summary>Views of sequences first … first+count−1 of a [·, time] batch.</summary>
    internal SequenceViews Range(int first, int count, int time)
    {
        int r0 = first * time, rows = count * time, d = _config.DModel;
        var qkv = _qkv.SliceRows(r0, rows);
        var x = _x.SliceRows(r0, rows);
        var sequences = new Tensor[count];
        for (int b = 0; b < count; b++)
        {
            sequences[b] = x.SliceRows(b * time, time);
        }

        var attended = _attended.SliceRows(r0, rows);
        return new SequenceViews(
            first, count, _values?.SliceRows(r0, rows), _ids?.SliceRows(r0, rows), x, _h.SliceRows(r0, rows), qkv, attended,
            attended.Reshape(count, time, d), AttentionInputs.Packed(qkv.Reshape(count, time, 3 * d), _config.NHeads),
            _hidden.SliceRows(r0, rows), _head.SliceRows(r0, rows), sequences);
    }

    public void Dispose()
    {
        _values?.Dispose();
        _ids?.Dispose();
        _x.Dispose();
        _h.Dispose();
        _qkv.Dispose();
        _attended.Dispose();
        _hidden.Dispose();
        _head.Dispose();
    }
}

/// <summary>The workspace's tensors as views of a run of sequences of one [batch, time] shape (views own nothing).</summary>
internal sealed record SequenceViews(
    int First, int Count, Tensor? Values, Tensor? Ids, Tensor X, Tensor H, Tensor Qkv, Tensor Attended, Tensor AttendedBatched,
    AttentionInputs AttentionInputs, Tensor Hidden, Tensor Head, Tensor[] Sequences);

/// <summary>Views of a workspace for one [batch, time] shape: the whole batch, and its split into runs of sequences.</summary>
internal sealed class WorkspaceViews(EncoderWorkspace workspace, int time, SequenceViews full)
{
    private SequenceViews[]? _parts;

    public int Time { get; } = time;

    public SequenceViews Full { get; } = full;

    /// <summary>The batch cut into <paramref name="count"/> runs of consecutive sequences, sizes differing by at most one.</summary>
    public SequenceViews[] Parts(int count)
    {
        if (_parts is { } parts && parts.Length == count)
        {
            return parts;
        }

        int batch = Full.Count;
        parts = new SequenceViews[count];
        for (int i = 0; i < count; i++)
        {
            int first = batch * i / count, next = batch * (i + 1) / count;
            parts[i] = workspace.Range(first, next - first, Time);
        }

        _parts = parts;
        return parts;
    }
}

/// <summary>
/// Workspaces for concurrent forwards of one model: a forward rents one with room for its rows and returns it.
/// Only a few, and only workspaces up to <see cref="MaxPooledBytes"/>, are kept; a long sequence's large workspace
/// is freed after its forward.
/// </summary>
internal sealed class WorkspacePool(IComputeBackend backend, ModelConfig config) : IDisposable
{
    /// <summary>Largest workspace kept between forwards.</summary>
    public const long MaxPooledBytes = 64L << 20;

    private readonly ConcurrentBag<EncoderWorkspace> _idle = new();
    private readonly int _maxIdle = Math.Max(2, Environment.ProcessorCount);
    private volatile bool _disposed;

    public EncoderWorkspace Rent(int rows)
    {
        if (_idle.TryTake(out var workspace))
        {
            if (workspace.ResidualDType != backend.ResidualDType)
            {
                // The backend's precision changed since this workspace was made: its residual stream has the old dtype.
                workspace.Dispose();
                return new EncoderWorkspace(backend, config, rows);
            }

            if (workspace.Capacity >= rows)
            {
                return workspace;
            }

            // Grow: the next forwards of this size reuse the larger one.
            rows = Math.Max(rows, workspace.Capacity);
            workspace.Dispose();
        }

        return new EncoderWorkspace(backend, config, rows);
    }

    public void Return(EncoderWorkspace workspace)
    {
        if (_disposed || workspace.Bytes > MaxPooledBytes || _idle.Count >= _maxIdle)
        {
            workspace.Dispose();
            return;
        }

        _idle.Add(workspace);
    }

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out var workspace))
        {
            workspace.Dispose();
        }
    }
}

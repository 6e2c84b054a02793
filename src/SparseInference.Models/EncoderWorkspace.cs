using System.Collections.Concurrent;
using SparseInference.Models.Configuration;
using SparseInference.Tensors;

namespace SparseInference.Models;

/// <summary>
/// The activations of one forward on the backend (input, residual stream, normalised rows, qkv, attention output,
/// feed-forward hidden, head output), sized for up to <see cref="Capacity"/> rows and reused by later forwards, so a
/// forward allocates no backend memory. Used by one forward at a time (see <see cref="WorkspacePool"/>).
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
        int d = config.DModel;
        var owned = new List<Tensor>();
        try
        {
            Tensor Add(Tensor t)
            {
                owned.Add(t);
                return t;
            }

            if (config.InputKind == InputKind.Continuous)
            {
                _values = Add(backend.Allocate(capacity, config.InputChannels));
            }
            else
            {
                _ids = Add(backend.Allocate(new Shape(capacity), DType.I32));
            }

            _x = Add(backend.Allocate(capacity, d));
            _h = Add(backend.Allocate(capacity, d));
            _qkv = Add(backend.Allocate(capacity, 3 * d));
            _attended = Add(backend.Allocate(capacity, d));
            _hidden = Add(backend.Allocate(capacity, config.DFf));
            _head = Add(backend.Allocate(capacity, config.OutputDim));
        }
        catch
        {
            owned.ForEach(t => t.Dispose());
            throw;
        }

        Bytes = ((long)capacity * (config.InputKind == InputKind.Continuous ? config.InputChannels : 1)
                 + (long)capacity * (6L * d + config.DFf + config.OutputDim)) * sizeof(float);
    }

    /// <summary>Rows (batch × time) the workspace holds.</summary>
    public int Capacity { get; }

    /// <summary>Backend memory held.</summary>
    public long Bytes { get; }

    /// <summary>Views of the first batch·time rows shaped for a [batch, time] forward; kept while the shape repeats.</summary>
    public WorkspaceViews Views(int batch, int time)
    {
        if (_views is { } v && v.Batch == batch && v.Time == time)
        {
            return v;
        }

        int rows = batch * time, d = _config.DModel;
        var qkv = _qkv.SliceRows(0, rows);
        var sequences = new Tensor[batch];
        var x = _x.SliceRows(0, rows);
        for (int b = 0; b < batch; b++)
        {
            sequences[b] = x.SliceRows(b * time, time);
        }

        var attended = _attended.SliceRows(0, rows);
        _views = new WorkspaceViews(
            batch, time, _values?.SliceRows(0, rows), _ids?.SliceRows(0, rows), x, _h.SliceRows(0, rows), qkv, attended,
            attended.Reshape(batch, time, d), AttentionInputs.Packed(qkv.Reshape(batch, time, 3 * d), _config.NHeads),
            _hidden.SliceRows(0, rows), _head.SliceRows(0, rows), sequences);
        return _views;
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

/// <summary>The workspace's tensors as views for one [batch, time] shape (views own nothing).</summary>
internal sealed record WorkspaceViews(
    int Batch, int Time, Tensor? Values, Tensor? Ids, Tensor X, Tensor H, Tensor Qkv, Tensor Attended, Tensor AttendedBatched,
    AttentionInputs AttentionInputs, Tensor Hidden, Tensor Head, Tensor[] Sequences);

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

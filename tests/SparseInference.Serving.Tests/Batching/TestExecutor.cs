using System.Collections.Concurrent;
using SparseInference.Serving.Batching;

namespace SparseInference.Serving.Tests.Batching;

public sealed record Work(string Id, int Length = 1, int Size = 1);

/// <summary>
/// A real executor for tests: answers each request with its id, records every batch it was given,
/// can hold batches at a gate, and throws for any batch containing a poisoned id.
/// </summary>
public sealed class TestExecutor : IBatchExecutor<Work, string>
{
    private readonly ConcurrentQueue<TaskCompletionSource> _gates = new();
    private readonly SemaphoreSlim _calls = new(0);
    private readonly object _lock = new();
    private readonly List<string[]> _batches = [];

    private volatile bool _open;

    public bool Gated { get; init; }

    public HashSet<string> Poisoned { get; init; } = [];

    public IReadOnlyList<string[]> Batches
    {
        get
        {
            lock (_lock)
                return _batches.ToList();
        }
    }

    public int Running { get; private set; }

    /// <summary>Runs inside every executor call, e.g. to move a fake clock by the compute time.</summary>
    public Action? OnExecute { get; init; }

    public int GetSequenceLength(Work request) => request.Length;

    public int GetBatchSize(Work request) => request.Size;

    public async ValueTask<IReadOnlyList<string>> ExecuteAsync(IReadOnlyList<Work> batch, CancellationToken cancellationToken)
    {
        lock (_lock)
            _batches.Add(batch.Select(w => w.Id).ToArray());
        if (Gated && !_open)
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _gates.Enqueue(gate);
            _calls.Release();
            await gate.Task;
        }
        else
        {
            _calls.Release();
        }
        OnExecute?.Invoke();
        var poisoned = batch.FirstOrDefault(w => Poisoned.Contains(w.Id));
        if (poisoned is not null)
            throw new InvalidDataException($"poisoned request {poisoned.Id}");
        return batch.Select(w => "done:" + w.Id).ToArray();
    }

    /// <summary>Waits until the executor has been called <paramref name="count"/> times in all.</summary>
    public async Task WaitForBatchesAsync(int count)
    {
        await Infrastructure.Eventually.TrueAsync(() => Batches.Count >= count, $"the executor has received {count} batches (got {Batches.Count})");
    }

    /// <summary>Lets every held batch and every later one through.</summary>
    public void Open()
    {
        _open = true;
        while (_gates.TryDequeue(out var gate))
            gate.SetResult();
    }

    /// <summary>Lets the oldest held batch finish.</summary>
    public async Task ReleaseOneAsync()
    {
        await Infrastructure.Eventually.TrueAsync(() => !_gates.IsEmpty, "a batch is waiting at the gate");
        _gates.TryDequeue(out var gate);
        gate!.SetResult();
    }
}

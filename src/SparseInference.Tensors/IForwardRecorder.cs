namespace SparseInference.Tensors;

/// <summary>
/// Optional capability of a backend that can record the ops of a forward once and replay them as one launch (on a GPU:
/// a CUDA graph), for models whose forward repeats a shape. Where each op costs more to launch than to run — a lone
/// sensor window — replaying a recording leaves the device's own time. A model keeps at most
/// <see cref="MaxRecordedForwards"/> recordings and disposes them when it is unloaded.
/// </summary>
public interface IForwardRecorder
{
    /// <summary>Recordings one model may keep at once; 0 switches recording off.</summary>
    int MaxRecordedForwards { get; }

    /// <summary>
    /// Records the ops <paramref name="forward"/> queues on this backend without running them, preceded by a copy of
    /// <see cref="IRecordedForward.Input"/> into <paramref name="input"/> and followed by a copy of <paramref name="output"/>
    /// into <see cref="IRecordedForward.Output"/>. Every tensor the ops touch must outlive the recording, and no other op
    /// may write the tensors the recording writes while it lives. Returns null, with nothing recorded, where an op cannot
    /// be recorded (it waits for the device or reads a result on the host); the tensors the ops wrote then hold no
    /// values and are to be discarded.
    /// </summary>
    IRecordedForward? Record(Tensor input, Tensor output, Action forward);
}

/// <summary>A recorded forward: fill <see cref="Input"/>, <see cref="Run"/>, read <see cref="Output"/>. One caller at a time.</summary>
public interface IRecordedForward : IDisposable
{
    /// <summary>The input's bytes as the next <see cref="Run"/> copies them (host memory the device reads directly).</summary>
    Span<byte> Input { get; }

    /// <summary>The output's bytes as the last <see cref="Run"/> left them.</summary>
    ReadOnlySpan<byte> Output { get; }

    /// <summary>Replays the recording and waits for it.</summary>
    void Run();
}

using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>
/// The CPU backend with <see cref="IForwardRecorder"/>: a "recording" keeps the forward's ops and runs them again on
/// every replay (copying the staged input in first and the output out last), which is what a replayed CUDA graph computes.
/// Lets the model's recording logic (which shapes are recorded, when, the bucket padding, eviction, disposal) run without
/// a GPU. Counts recordings made and alive.
/// </summary>
internal sealed class ReplayingCpuBackend(CpuBackend cpu, int maxRecordedForwards) : CpuBackendDecorator(cpu), IForwardRecorder
{
    /// <summary>Set to make <see cref="Record"/> fail (return null), as a recording that hits an op that waits would.</summary>
    public bool FailRecordings { get; set; }

    /// <summary>Calls of <see cref="Record"/>.</summary>
    public int Recorded { get; private set; }

    /// <summary>Recordings not yet disposed.</summary>
    public int Alive { get; private set; }

    /// <summary>Replays run.</summary>
    public int Replays { get; private set; }

    public int MaxRecordedForwards => maxRecordedForwards;

    public IRecordedForward? Record(Tensor input, Tensor output, Action forward)
    {
        Recorded++;
        if (FailRecordings)
        {
            return null;
        }

        // The ops' host side runs while recording, as it does during a stream capture (what it computes is redone on replay).
        forward();
        Alive++;
        return new Replay(this, input, output, forward);
    }

    private sealed class Replay(ReplayingCpuBackend owner, Tensor input, Tensor output, Action forward) : IRecordedForward
    {
        private readonly byte[] _input = new byte[input.SizeInBytes];
        private readonly byte[] _output = new byte[output.SizeInBytes];
        private bool _disposed;

        public Span<byte> Input => _input;

        public ReadOnlySpan<byte> Output => _output;

        public void Run()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            owner.Replays++;
            owner.CopyFromHost(_input, input);
            forward();
            owner.CopyToHost(output, _output);
        }

        public void Dispose()
        {
            if (!_disposed)
            {
                _disposed = true;
                owner.Alive--;
            }
        }
    }

    public override string Name => "cpu-replaying";
}

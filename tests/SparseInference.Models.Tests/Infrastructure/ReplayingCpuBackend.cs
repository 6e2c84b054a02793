using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>
/// The CPU backend with <see cref="IForwardRecorder"/>: a "recording" keeps the forward's ops and runs them again on
/// every replay (copying the staged input in first and the output out last), which is what a replayed CUDA graph computes.
/// Lets the model's recording logic (which shapes are recorded, when, the bucket padding, eviction, disposal) run without
/// a GPU. Counts recordings made and alive.
/// </summary>
internal sealed class ReplayingCpuBackend(CpuBackend cpu, int maxRecordedForwards) : IComputeBackend, IForwardRecorder
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

    public string Name => "cpu-replaying";

    public DeviceKind Device => DeviceKind.Cpu;

    public DType ResidualDType => DType.F32;

    public bool Supports(TensorOp op, DType dtype) => cpu.Supports(op, dtype);

    public Tensor Allocate(Shape shape, DType dtype, bool zeroed = true) => cpu.Allocate(shape, dtype, zeroed);

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination) => cpu.CopyFromHost(source, destination);

    public void CopyToHost(Tensor source, Span<byte> destination) => cpu.CopyToHost(source, destination);

    public void Copy(Tensor source, Tensor destination) => cpu.Copy(source, destination);

    public void Convert(Tensor source, Tensor destination) => cpu.Convert(source, destination);

    public void PrepareWeight(Tensor weight, bool transposed) => cpu.PrepareWeight(weight, transposed);

    public void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null) => cpu.MatMul(a, b, c, options, bias);

    public void BiasAdd(Tensor x, Tensor bias, Tensor output) => cpu.BiasAdd(x, bias, output);

    public void Add(Tensor a, Tensor b, Tensor output) => cpu.Add(a, b, output);

    public void Scale(Tensor x, float alpha, Tensor output) => cpu.Scale(x, alpha, output);

    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output) => cpu.LayerNorm(x, gamma, beta, epsilon, output);

    public void Gelu(Tensor x, Tensor output) => cpu.Gelu(x, output);

    public void Sigmoid(Tensor x, Tensor output) => cpu.Sigmoid(x, output);

    public void Softmax(Tensor x, Tensor output) => cpu.Softmax(x, output);

    public void Embedding(Tensor table, Tensor ids, Tensor output) => cpu.Embedding(table, ids, output);

    public void Gather(Tensor source, Tensor indices, Tensor output) => cpu.Gather(source, indices, output);

    public void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null) =>
        cpu.ScatterAddRows(source, indices, destination, rowScale);

    public void TopK(Tensor x, int k, Tensor values, Tensor indices) => cpu.TopK(x, k, values, indices);

    public AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout) =>
        cpu.Attention(inputs, output, validLengths, layout);

    public AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery) =>
        cpu.TopKAttention(inputs, output, validLengths, keysPerQuery);

    public void Dispose()
    {
    }
}

using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>
/// The CPU backend behind the contract, every op forwarded: test backends derive from it and override or add only what
/// they stand in for (a capability such as <see cref="IForwardRecorder"/>, or a different residual dtype).
/// </summary>
internal abstract class CpuBackendDecorator(CpuBackend cpu) : IComputeBackend
{
    protected CpuBackend Cpu { get; } = cpu;

    public abstract string Name { get; }

    public DeviceKind Device => DeviceKind.Cpu;

    public virtual DType ResidualDType => DType.F32;

    public virtual bool Supports(TensorOp op, DType dtype) => Cpu.Supports(op, dtype);

    public Tensor Allocate(Shape shape, DType dtype, bool zeroed = true) => Cpu.Allocate(shape, dtype, zeroed);

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination) => Cpu.CopyFromHost(source, destination);

    public void CopyToHost(Tensor source, Span<byte> destination) => Cpu.CopyToHost(source, destination);

    public void Copy(Tensor source, Tensor destination) => Cpu.Copy(source, destination);

    public void Convert(Tensor source, Tensor destination) => Cpu.Convert(source, destination);

    public void PrepareWeight(Tensor weight, bool transposed) => Cpu.PrepareWeight(weight, transposed);

    public virtual void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null) => Cpu.MatMul(a, b, c, options, bias);

    public void BiasAdd(Tensor x, Tensor bias, Tensor output) => Cpu.BiasAdd(x, bias, output);

    public virtual void Add(Tensor a, Tensor b, Tensor output) => Cpu.Add(a, b, output);

    public void Scale(Tensor x, float alpha, Tensor output) => Cpu.Scale(x, alpha, output);

    public virtual void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output) => Cpu.LayerNorm(x, gamma, beta, epsilon, output);

    public void Gelu(Tensor x, Tensor output) => Cpu.Gelu(x, output);

    public void Sigmoid(Tensor x, Tensor output) => Cpu.Sigmoid(x, output);

    public void Softmax(Tensor x, Tensor output) => Cpu.Softmax(x, output);

    public virtual void Embedding(Tensor table, Tensor ids, Tensor output) => Cpu.Embedding(table, ids, output);

    public void Gather(Tensor source, Tensor indices, Tensor output) => Cpu.Gather(source, indices, output);

    public virtual void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null) =>
        Cpu.ScatterAddRows(source, indices, destination, rowScale);

    public void TopK(Tensor x, int k, Tensor values, Tensor indices) => Cpu.TopK(x, k, values, indices);

    public AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout) =>
        Cpu.Attention(inputs, output, validLengths, layout);

    public AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery) =>
        Cpu.TopKAttention(inputs, output, validLengths, keysPerQuery);

    /// <summary>The CPU backend belongs to the test that made it.</summary>
    public void Dispose()
    {
    }
}

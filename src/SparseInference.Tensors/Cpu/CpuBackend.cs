using System.Runtime.CompilerServices;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// The reference backend: host memory, kernels on <see cref="System.Numerics.Tensors.TensorPrimitives"/> and
/// Vector512/Vector256, work split over <see cref="Threads"/> threads. One file per op family.
/// </summary>
public sealed unsafe partial class CpuBackend : IComputeBackend
{
    private readonly CpuParallel _parallel;

    /// <summary>Creates a CPU backend using <paramref name="threads"/> threads (default: all processors) on the shared worker pool.</summary>
    public CpuBackend(int? threads = null)
        : this(threads, CpuThreading.WorkerPool)
    {
    }

    /// <summary>Creates a CPU backend with a choice of how ops are spread over the threads.</summary>
    public CpuBackend(int? threads, CpuThreading threading)
    {
        var n = threads ?? Environment.ProcessorCount;
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(threads), n, "threads: expected > 0.");
        if (!Enum.IsDefined(threading)) throw new ArgumentOutOfRangeException(nameof(threading), threading, "threading: unknown value.");
        _parallel = new CpuParallel(n, threading);
    }

    /// <summary>Threads the ops use.</summary>
    public int Threads => _parallel.Threads;

    /// <summary>How ops are spread over the threads.</summary>
    public CpuThreading Threading => _parallel.Threading;

    public string Name => "cpu";

    public DeviceKind Device => DeviceKind.Cpu;

    public bool Supports(TensorOp op, DType dtype) => op switch
    {
        TensorOp.Copy => true,
        TensorOp.Convert => dtype is DType.F32 or DType.F16 or DType.BF16,
        TensorOp.Embedding or TensorOp.Gather => dtype is DType.F32 or DType.I32,
        _ => dtype == DType.F32,
    };

    public Tensor Allocate(Shape shape, DType dtype, bool zeroed = true)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var buffer = new CpuBuffer(this, shape.ElementCount * dtype.SizeInBytes(), zeroed);
        return new Tensor(buffer, shape, dtype);
    }

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination)
    {
        var dst = Bytes(destination, nameof(destination));
        if (source.Length != destination.SizeInBytes)
        {
            throw new ArgumentException($"source: expected {destination.SizeInBytes} bytes for {destination.Shape} {destination.DType}, got {source.Length}.", nameof(source));
        }
        source.CopyTo(new Span<byte>(dst, source.Length));
        DropPreparedLayout(destination);
        GC.KeepAlive(destination);
    }

    public void CopyToHost(Tensor source, Span<byte> destination)
    {
        var src = Bytes(source, nameof(source));
        if (destination.Length != source.SizeInBytes)
        {
            throw new ArgumentException($"destination: expected {source.SizeInBytes} bytes for {source.Shape} {source.DType}, got {destination.Length}.", nameof(destination));
        }
        new ReadOnlySpan<byte>(src, destination.Length).CopyTo(destination);
        GC.KeepAlive(source);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        var src = Bytes(source, nameof(source));
        var dst = Bytes(destination, nameof(destination));
        if (source.DType != destination.DType) throw new ArgumentException($"destination: expected dtype {source.DType}, got {destination.DType}.", nameof(destination));
        if (source.ElementCount != destination.ElementCount)
        {
            throw new ArgumentException($"destination: expected {source.ElementCount} elements, got {destination.ElementCount}.", nameof(destination));
        }
        Buffer.MemoryCopy(src, dst, destination.SizeInBytes, source.SizeInBytes);
        DropPreparedLayout(destination);
        GC.KeepAlive(source);
        GC.KeepAlive(destination);
    }

    /// <summary>
    /// The elements of an F32 tensor of this backend, read in place (no copy): host logic that inspects
    /// activations (e.g. choosing attention blocks) needs no round-trip on the CPU. Valid while the tensor lives.
    /// </summary>
    public ReadOnlySpan<float> HostView(Tensor tensor) => new(F32(tensor, nameof(tensor)), checked((int)tensor.ElementCount));

    /// <summary>Nothing to release: the worker pool is shared, buffers are owned by their tensors and stay valid.</summary>
    public void Dispose() => _parallel.Dispose();

    // ---- helpers shared by the op files -------------------------------------------------------

    /// <summary>Address of a tensor's first byte, after checking that it lives on this backend.</summary>
    private byte* Bytes(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor.Buffer is not CpuBuffer buffer || !ReferenceEquals(buffer.Backend, this))
        {
            throw new ArgumentException($"{name}: expected a tensor of this CPU backend, got one of '{tensor.Backend.Name}'.", name);
        }
        return buffer.Pointer + tensor.ByteOffset;
    }

    /// <summary>A weight written by a copy no longer matches the layout prepared from it.</summary>
    private static void DropPreparedLayout(Tensor destination) => ((CpuBuffer)destination.Buffer).Packed = null;

    /// <summary>Address of an F32 tensor's first element.</summary>
    private float* F32(Tensor tensor, string name)
    {
        var p = Bytes(tensor, name);
        if (tensor.DType != DType.F32) throw new ArgumentException($"{name}: expected F32, got {tensor.DType}.", name);
        return (float*)p;
    }

    /// <summary>Address of an I32 tensor's first element.</summary>
    private int* I32(Tensor tensor, string name)
    {
        var p = Bytes(tensor, name);
        if (tensor.DType != DType.I32) throw new ArgumentException($"{name}: expected I32, got {tensor.DType}.", name);
        return (int*)p;
    }

    private static void SameShape(Tensor expected, string expectedName, Tensor actual, string actualName)
    {
        if (expected.Shape != actual.Shape)
        {
            throw new ArgumentException($"{actualName}: expected the shape of {expectedName} {expected.Shape}, got {actual.Shape}.", actualName);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Span<float> Row(float* basePtr, long row, int width) => new(basePtr + row * width, width);
}

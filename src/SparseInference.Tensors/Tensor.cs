namespace SparseInference.Tensors;

/// <summary>
/// A dense, row-major tensor: a shape and a dtype over a range of a backend-owned <see cref="TensorBuffer"/>.
/// A tensor made by <see cref="IComputeBackend.Allocate"/> owns its buffer and frees it on dispose;
/// views (<see cref="Reshape"/>, <see cref="SliceRows"/>) share it and free nothing.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly bool _ownsBuffer;

    /// <summary>Wraps <paramref name="buffer"/> starting at <paramref name="byteOffset"/>; backends call this from Allocate.</summary>
    public Tensor(TensorBuffer buffer, Shape shape, DType dtype, long byteOffset = 0, bool ownsBuffer = true)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentNullException.ThrowIfNull(shape);
        var bytes = shape.ElementCount * dtype.SizeInBytes();
        if (byteOffset < 0 || byteOffset + bytes > buffer.SizeInBytes)
        {
            throw new ArgumentException(
                $"tensor: {shape} {dtype} at byte offset {byteOffset} needs {bytes} bytes, the buffer holds {buffer.SizeInBytes}.", nameof(shape));
        }
        Buffer = buffer;
        Shape = shape;
        DType = dtype;
        ByteOffset = byteOffset;
        _ownsBuffer = ownsBuffer;
    }

    /// <summary>The dimensions.</summary>
    public Shape Shape { get; }

    /// <summary>The element type.</summary>
    public DType DType { get; }

    /// <summary>The storage.</summary>
    public TensorBuffer Buffer { get; }

    /// <summary>Where the first element lies in <see cref="Buffer"/>.</summary>
    public long ByteOffset { get; }

    /// <summary>The backend that owns the storage.</summary>
    public IComputeBackend Backend => Buffer.Backend;

    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.ElementCount;

    /// <summary>Number of bytes the elements take.</summary>
    public long SizeInBytes => Shape.ElementCount * DType.SizeInBytes();

    /// <summary>Dimension <paramref name="axis"/> (negative counts from the end).</summary>
    public int Dim(int axis) => Shape[axis];

    /// <summary>Rank of the shape.</summary>
    public int Rank => Shape.Rank;

    /// <summary>A view of the same elements under another shape with the same element count.</summary>
    public Tensor Reshape(params ReadOnlySpan<int> dims)
    {
        var shape = new Shape(dims);
        if (shape.ElementCount != ElementCount)
        {
            throw new ArgumentException($"reshape: {Shape} has {ElementCount} elements, {shape} has {shape.ElementCount}.", nameof(dims));
        }
        return new Tensor(Buffer, shape, DType, ByteOffset, ownsBuffer: false);
    }

    /// <summary>A view of rows <paramref name="start"/> … start+count−1 of the first axis (contiguous, no copy).</summary>
    public Tensor SliceRows(int start, int count)
    {
        if (Rank == 0) throw new InvalidOperationException("slice: a scalar tensor has no rows.");
        var rows = Shape[0];
        if (start < 0 || count < 0 || start + count > rows)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"slice: rows {start}..{start + count - 1} outside 0..{rows - 1} of {Shape}.");
        }
        var dims = Shape.ToArray();
        dims[0] = count;
        var rowBytes = Shape.ProductOf(1, Rank) * DType.SizeInBytes();
        return new Tensor(Buffer, new Shape(dims), DType, ByteOffset + start * rowBytes, ownsBuffer: false);
    }

    /// <summary>Frees the buffer if this tensor owns it.</summary>
    public void Dispose()
    {
        if (_ownsBuffer) Buffer.Dispose();
    }

    public override string ToString() => $"Tensor{Shape} {DType} on {Backend.Name}";
}

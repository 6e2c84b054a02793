namespace SparseInference.Tensors;

/// <summary>An immutable list of non-negative dimensions, outermost first (row-major).</summary>
public sealed class Shape : IEquatable<Shape>
{
    private readonly int[] _dims;

    /// <summary>Creates a shape; every dimension must be ≥ 0.</summary>
    public Shape(params ReadOnlySpan<int> dims)
    {
        _dims = dims.ToArray();
        long count = 1;
        for (var i = 0; i < _dims.Length; i++)
        {
            if (_dims[i] < 0)
            {
                throw new ArgumentException($"shape: dimension {i} must be ≥ 0, got {_dims[i]}.", nameof(dims));
            }
            count *= _dims[i];
        }
        ElementCount = count;
    }

    /// <summary>Number of dimensions.</summary>
    public int Rank => _dims.Length;

    /// <summary>Product of the dimensions.</summary>
    public long ElementCount { get; }

    /// <summary>The dimensions.</summary>
    public ReadOnlySpan<int> Dims => _dims;

    /// <summary>Dimension <paramref name="axis"/>; negative axes count from the end (-1 is the last).</summary>
    public int this[int axis]
    {
        get
        {
            var a = axis < 0 ? axis + _dims.Length : axis;
            if ((uint)a >= (uint)_dims.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(axis), axis, $"axis out of range for a rank-{_dims.Length} shape {this}.");
            }
            return _dims[a];
        }
    }

    /// <summary>Product of all dimensions but the last (the number of rows of the last axis).</summary>
    public long LeadingCount => Rank == 0 ? 1 : ElementCount == 0 ? 0 : ProductOf(0, Rank - 1);

    /// <summary>Product of dimensions <paramref name="start"/> (inclusive) to <paramref name="end"/> (exclusive).</summary>
    public long ProductOf(int start, int end)
    {
        long p = 1;
        for (var i = start; i < end; i++) p *= _dims[i];
        return p;
    }

    /// <summary>A copy of the dimensions.</summary>
    public int[] ToArray() => (int[])_dims.Clone();

    public bool Equals(Shape? other) => other is not null && _dims.AsSpan().SequenceEqual(other._dims);

    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in _dims) h.Add(d);
        return h.ToHashCode();
    }

    public override string ToString() => "[" + string.Join(", ", _dims) + "]";

    public static bool operator ==(Shape? a, Shape? b) => a is null ? b is null : a.Equals(b);

    public static bool operator !=(Shape? a, Shape? b) => !(a == b);
}

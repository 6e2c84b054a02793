using System.Numerics.Tensors;

namespace SparseInference.Tensors.Cpu;

// Element-wise ops: add, bias add, scale, GELU, sigmoid, dtype conversion.
public sealed unsafe partial class CpuBackend
{
    public void Add(Tensor a, Tensor b, Tensor output)
    {
        float* pa = F32(a, nameof(a)), pb = F32(b, nameof(b)), po = F32(output, nameof(output));
        SameShape(a, nameof(a), b, nameof(b));
        SameShape(a, nameof(a), output, nameof(output));
        _parallel.ForRange(a.ElementCount, 1, (s, e) =>
            TensorPrimitives.Add(Slice(pa, s, e), Slice(pb, s, e), Slice(po, s, e)));
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        GC.KeepAlive(output);
    }

    public void BiasAdd(Tensor x, Tensor bias, Tensor output)
    {
        float* px = F32(x, nameof(x)), pb = F32(bias, nameof(bias)), po = F32(output, nameof(output));
        SameShape(x, nameof(x), output, nameof(output));
        var n = LastDim(x, nameof(x));
        if (bias.Rank != 1 || bias.Dim(0) != n) throw new ArgumentException($"bias: expected shape [{n}], got {bias.Shape}.", nameof(bias));
        _parallel.ForRange(x.Shape.LeadingCount, n, (s, e) =>
        {
            var bias = new ReadOnlySpan<float>(pb, n);
            for (var r = s; r < e; r++) TensorPrimitives.Add(Row(px, r, n), bias, Row(po, r, n));
        });
        GC.KeepAlive(x);
        GC.KeepAlive(bias);
        GC.KeepAlive(output);
    }

    public void Scale(Tensor x, float alpha, Tensor output)
    {
        float* px = F32(x, nameof(x)), po = F32(output, nameof(output));
        SameShape(x, nameof(x), output, nameof(output));
        _parallel.ForRange(x.ElementCount, 1, (s, e) => TensorPrimitives.Multiply(Slice(px, s, e), alpha, Slice(po, s, e)));
        GC.KeepAlive(x);
        GC.KeepAlive(output);
    }

    public void Gelu(Tensor x, Tensor output)
    {
        float* px = F32(x, nameof(x)), po = F32(output, nameof(output));
        SameShape(x, nameof(x), output, nameof(output));
        _parallel.ForRange(x.ElementCount, 8, (s, e) => MathKernels.Gelu(Slice(px, s, e), Slice(po, s, e)));
        GC.KeepAlive(x);
        GC.KeepAlive(output);
    }

    public void Sigmoid(Tensor x, Tensor output)
    {
        float* px = F32(x, nameof(x)), po = F32(output, nameof(output));
        SameShape(x, nameof(x), output, nameof(output));
        _parallel.ForRange(x.ElementCount, 4, (s, e) => TensorPrimitives.Sigmoid(Slice(px, s, e), Slice(po, s, e)));
        GC.KeepAlive(x);
        GC.KeepAlive(output);
    }

    public void Convert(Tensor source, Tensor destination)
    {
        var src = Bytes(source, nameof(source));
        var dst = Bytes(destination, nameof(destination));
        if (source.ElementCount != destination.ElementCount)
        {
            throw new ArgumentException($"destination: expected {source.ElementCount} elements, got {destination.ElementCount}.", nameof(destination));
        }
        var n = checked((int)source.ElementCount);
        switch (source.DType, destination.DType)
        {
            case (DType.F32, DType.F32):
                new ReadOnlySpan<float>(src, n).CopyTo(new Span<float>(dst, n));
                break;
            case (DType.F16, DType.F32):
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(src, n), new Span<float>(dst, n));
                break;
            case (DType.F32, DType.F16):
                TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(src, n), new Span<Half>(dst, n));
                break;
            case (DType.BF16, DType.F32):
                {
                    // bfloat16 is the upper 16 bits of an F32.
                    var s = new ReadOnlySpan<ushort>(src, n);
                    var d = new Span<uint>(dst, n);
                    for (var i = 0; i < n; i++) d[i] = (uint)s[i] << 16;
                    break;
                }
            case (DType.F32, DType.BF16):
                {
                    // Round to nearest even; NaN stays NaN (quiet bit set).
                    var s = new ReadOnlySpan<uint>(src, n);
                    var d = new Span<ushort>(dst, n);
                    for (var i = 0; i < n; i++)
                    {
                        var bits = s[i];
                        d[i] = (bits & 0x7FFFFFFF) > 0x7F800000
                            ? (ushort)((bits >> 16) | 0x40)
                            : (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
                    }
                    break;
                }
            default:
                throw new NotSupportedException($"Backend 'cpu' does not convert {source.DType} to {destination.DType}.");
        }
        GC.KeepAlive(source);
        GC.KeepAlive(destination);
    }

    private static Span<float> Slice(float* p, long start, long end) => new(p + start, checked((int)(end - start)));

    private static int LastDim(Tensor x, string name)
    {
        if (x.Rank == 0) throw new ArgumentException($"{name}: expected rank ≥ 1, got a scalar.", name);
        return x.Dim(-1);
    }
}

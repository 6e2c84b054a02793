using System.Runtime.InteropServices;

namespace SparseInference.Tensors;

/// <summary>Conveniences built only on <see cref="IComputeBackend"/>, so every backend has them.</summary>
public static class ComputeBackendExtensions
{
    /// <summary>Allocates an F32 tensor of <paramref name="dims"/>.</summary>
    public static Tensor Allocate(this IComputeBackend backend, params ReadOnlySpan<int> dims) =>
        backend.Allocate(new Shape(dims), DType.F32);

    /// <summary>Allocates a tensor shaped like <paramref name="like"/> (zeroed).</summary>
    public static Tensor AllocateLike(this IComputeBackend backend, Tensor like) => backend.Allocate(like.Shape, like.DType);

    /// <summary>Creates a tensor holding a copy of host data (float → F32, Half → F16, int → I32).</summary>
    public static Tensor FromHost<T>(this IComputeBackend backend, ReadOnlySpan<T> data, params ReadOnlySpan<int> dims) where T : unmanaged
    {
        var shape = new Shape(dims);
        if (shape.ElementCount != data.Length)
        {
            throw new ArgumentException($"data: shape {shape} needs {shape.ElementCount} elements, got {data.Length}.", nameof(data));
        }
        var tensor = backend.Allocate(shape, DTypeExtensions.Of<T>(), zeroed: false);
        backend.CopyFromHost(MemoryMarshal.AsBytes(data), tensor);
        return tensor;
    }

    /// <summary>Creates a tensor holding a copy of host data (float[] → F32, int[] → I32, Half[] → F16).</summary>
    public static Tensor FromHost<T>(this IComputeBackend backend, T[] data, params ReadOnlySpan<int> dims) where T : unmanaged =>
        backend.FromHost((ReadOnlySpan<T>)data, dims);

    /// <summary>Overwrites the tensor with host data of its dtype and element count.</summary>
    public static void Upload<T>(this Tensor tensor, ReadOnlySpan<T> data) where T : unmanaged
    {
        CheckHostType<T>(tensor, data.Length);
        tensor.Backend.CopyFromHost(MemoryMarshal.AsBytes(data), tensor);
    }

    /// <summary>Copies the tensor to host memory of its dtype and element count.</summary>
    public static void Download<T>(this Tensor tensor, Span<T> destination) where T : unmanaged
    {
        CheckHostType<T>(tensor, destination.Length);
        tensor.Backend.CopyToHost(tensor, MemoryMarshal.AsBytes(destination));
    }

    /// <summary>A host copy of the tensor's elements.</summary>
    public static T[] ToArray<T>(this Tensor tensor) where T : unmanaged
    {
        var result = new T[tensor.ElementCount];
        tensor.Download<T>(result);
        return result;
    }

    /// <summary>PyTorch Linear: y = x·Wᵀ + b (optionally followed by an activation); x [..., in], W [out, in], b [out] or null, y [..., out].</summary>
    public static void Linear(this IComputeBackend backend, Tensor x, Tensor weight, Tensor? bias, Tensor output, Activation activation = Activation.None) =>
        backend.MatMul(x, weight, output, MatMulOptions.Linear with { Activation = activation }, bias);

    /// <summary>Attention over separate heads-major or token-major q, k, v (see <see cref="AttentionInputs"/>).</summary>
    public static AttentionResult Attention(this IComputeBackend backend, Tensor q, Tensor k, Tensor v, Tensor output, int heads, ReadOnlySpan<int> validLengths, BlockLayout? layout = null) =>
        backend.Attention(AttentionInputs.Separate(q, k, v, heads), output, validLengths, layout);

    /// <summary>Attention straight from a fused [B, T, 3·H·d_head] qkv tensor into a [B, T, H·d_head] output.</summary>
    public static AttentionResult AttentionPacked(this IComputeBackend backend, Tensor qkv, Tensor output, int heads, ReadOnlySpan<int> validLengths, BlockLayout? layout = null) =>
        backend.Attention(AttentionInputs.Packed(qkv, heads), output, validLengths, layout);

    /// <summary>Checks that a backend supports an op, failing loudly and by name when it does not.</summary>
    public static void Require(this IComputeBackend backend, TensorOp op, DType dtype)
    {
        if (!backend.Supports(op, dtype)) throw new NotSupportedException($"Backend '{backend.Name}' does not support {op} on {dtype}.");
    }

    private static void CheckHostType<T>(Tensor tensor, int length) where T : unmanaged
    {
        var dtype = DTypeExtensions.Of<T>();
        if (dtype != tensor.DType) throw new ArgumentException($"data: tensor is {tensor.DType}, host type {typeof(T).Name} is {dtype}.");
        if (length != tensor.ElementCount) throw new ArgumentException($"data: expected {tensor.ElementCount} elements for {tensor.Shape}, got {length}.");
    }
}

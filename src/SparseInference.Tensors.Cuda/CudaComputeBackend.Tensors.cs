using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

// The device memory behind tensors: views, the kept BF16 copies and the pending FP32 values, and argument checks.
public sealed partial class CudaComputeBackend
{
    // ---- BF16 copies ---------------------------------------------------------------------------

    /// <summary>
    /// The tensor's memory for an op that writes it (and reads it first when <paramref name="reads"/>): drops its BF16
    /// copy. FP32 values still pending from a BF16-only output are filled in first unless this write replaces them all.
    /// </summary>
    private CudaBuffer Output(Tensor t, string name, bool reads = false)
    {
        var view = RawView(t, name);
        var buffer = (CudaTensorBuffer)t.Buffer;
        if (buffer.Fp32Pending && (reads || !buffer.CopyWithin(t.ByteOffset, t.SizeInBytes)))
        {
            FillFp32(buffer);
        }

        buffer.Written();
        return view;
    }

    /// <summary>The tensor's values rounded to BF16: its kept copy if still current, else converted now and kept.</summary>
    private CudaBuffer Bf16Of(Tensor t, string name)
    {
        RawView(t, name);
        var buffer = (CudaTensorBuffer)t.Buffer;
        if (buffer.Bf16Copy(t.ByteOffset, t.ElementCount) is { } kept)
        {
            return kept;
        }

        var source = View(t, name);
        var copy = Gpu.Allocate(Math.Max(2, t.ElementCount * 2), MemoryCategory.Workspace);
        Gpu.Elementwise.ConvertToBFloat16(source, copy, t.ElementCount);
        buffer.KeepBf16Copy(t.ByteOffset, t.ElementCount, copy, fp32Pending: false);
        recording?.NewCopies.Add(buffer);
        return copy;
    }

    /// <summary>
    /// Records <paramref name="copy"/> (owned from here on) as the BF16 copy of the tensor just written; with
    /// <paramref name="fp32Pending"/> the copy holds the values and the FP32 memory is filled on the first FP32 read.
    /// </summary>
    private void SetBf16Copy(Tensor t, CudaBuffer copy, bool fp32Pending = false)
    {
        var buffer = (CudaTensorBuffer)t.Buffer;
        buffer.KeepBf16Copy(t.ByteOffset, t.ElementCount, copy, fp32Pending);
        recording?.NewCopies.Add(buffer);
    }

    /// <summary>Widens a BF16-only output into its FP32 memory.</summary>
    private void FillFp32(CudaTensorBuffer buffer)
    {
        var (offset, count, copy) = buffer.PendingCopy();
        Gpu.Elementwise.ConvertToFloat32(copy, CudaBuffer.View(buffer.Memory, offset, count * 4), count);
        buffer.Fp32Filled();
    }

    /// <summary>The tensor's memory for an op that reads it: FP32 values pending from a BF16-only output are filled in first.</summary>
    private CudaBuffer View(Tensor t, string name)
    {
        var view = RawView(t, name);
        var buffer = (CudaTensorBuffer)t.Buffer;
        if (buffer.Fp32Pending)
        {
            FillFp32(buffer);
        }

        return view;
    }

    private CudaBuffer RawView(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.Buffer is not CudaTensorBuffer buffer || !ReferenceEquals(buffer.Backend, this))
        {
            throw new ArgumentException($"{name}: expected a tensor of backend '{Name}', got one of '{t.Backend.Name}'.", name);
        }

        ObjectDisposedException.ThrowIf(buffer.IsDisposed, t);
        return CudaBuffer.View(buffer.Memory, t.ByteOffset, t.SizeInBytes);
    }

    private NotSupportedException Unsupported(TensorOp op) =>
        new($"Backend '{Name}' does not support {op}; check Supports({op}, …) and fall back to the CPU backend.");

    /// <summary>Index tensors are read back (one small copy) so that a bad index fails by name instead of faulting the device.</summary>
    private void CheckIndices(Tensor indices, int limit, string name, bool distinct)
    {
        var host = new int[indices.ElementCount];
        Gpu.Download<int>(View(indices, name), host);
        var seen = distinct ? new HashSet<int>() : null;
        for (var i = 0; i < host.Length; i++)
        {
            if ((uint)host[i] >= (uint)limit)
            {
                throw new ArgumentException($"{name}[{i}]: expected 0 ≤ index < {limit}, got {host[i]}.", name);
            }

            if (seen is not null && !seen.Add(host[i]))
            {
                throw new ArgumentException($"{name}[{i}]: expected distinct indices, got {host[i]} twice.", name);
            }
        }
    }

    private static void RequireI32(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.DType != DType.I32)
        {
            throw new ArgumentException($"{name}: expected I32, got {t.DType}.", name);
        }
    }

    private static void RequireF32(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.DType != DType.F32)
        {
            throw new ArgumentException($"{name}: expected F32, got {t.DType}.", name);
        }
    }

    private static void RequireFloat(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.DType is not (DType.F32 or DType.BF16))
        {
            throw new ArgumentException($"{name}: expected F32 or BF16, got {t.DType}.", name);
        }
    }

    private static void SameShape(Tensor a, Tensor b, string name)
    {
        ArgumentNullException.ThrowIfNull(b, name);
        if (a.Shape != b.Shape)
        {
            throw new ArgumentException($"{name}: expected shape {a.Shape}, got {b.Shape}.", name);
        }
    }

    private static void SameCount(Tensor a, Tensor b, string name)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b, name);
        if (a.ElementCount != b.ElementCount)
        {
            throw new ArgumentException($"{name}: expected {a.ElementCount} elements, got {b.ElementCount}.", name);
        }
    }
}

using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Kernels;

/// <summary>
/// The kernels of residual.cu, for a BF16 residual stream (IComputeBackend.ResidualDType = BF16): LayerNorm reading BF16
/// rows and the mixed FP32/BF16 add. BF16 values are widened on load and results rounded to nearest-even on store.
/// </summary>
public sealed unsafe class ResidualKernels
{
    private readonly CudaDevice device;

    internal ResidualKernels(CudaDevice device) => this.device = device;

    /// <summary>
    /// LayerNorm of BF16 rows (a BF16 residual stream): as <see cref="LayerNorm"/>, x holding rows·cols BF16 values.
    /// <paramref name="y"/> (FP32) and <paramref name="y16"/> (BF16) are each optional; at least one is written.
    /// </summary>
    public void LayerNormBFloat16Input(CudaBuffer x, CudaBuffer gamma, CudaBuffer beta, CudaBuffer? y, CudaBuffer? y16, int rows, int cols, float eps)
    {
        if (y is null && y16 is null)
        {
            throw new ArgumentException("y: expected an FP32 or a BF16 output, got neither.", nameof(y));
        }

        CudaDevice.CheckRange(x, 0, (long)rows * cols * 2, nameof(x));
        CudaDevice.CheckRange(gamma, 0, (long)cols * 4, nameof(gamma));
        CudaDevice.CheckRange(beta, 0, (long)cols * 4, nameof(beta));
        if (y is not null)
        {
            CudaDevice.CheckRange(y, 0, (long)rows * cols * 4, nameof(y));
        }

        if (y16 is not null)
        {
            CudaDevice.CheckRange(y16, 0, (long)rows * cols * 2, nameof(y16));
        }

        device.MakeCurrent();
        ulong px = x.Pointer, pg = gamma.Pointer, pb = beta.Pointer, py = y?.Pointer ?? 0, py16 = y16?.Pointer ?? 0;
        var vector = cols % 128 == 0 && cols <= 1024 && (pg | pb | py) % 16 == 0 && (px | py16) % 8 == 0;
        var name = vector ? "layer_norm_bf16_vec" : "layer_norm_bf16";
        var f = device.Function("residual.cu", name);
        void** args = stackalloc void*[] { &px, &pg, &pb, &py, &py16, &rows, &cols, &eps };
        const int warps = 8;
        device.Launch(f, (uint)((rows + warps - 1) / warps), 1, 1, warps * 32, 0, args, name);
    }

    /// <summary>y = a + b over n elements, each of a, b, y FP32 or BF16 (the flag says which); y may be a or b.</summary>
    public void AddMixed(CudaBuffer a, bool aBf16, CudaBuffer b, bool bBf16, CudaBuffer y, bool yBf16, long n)
    {
        CudaDevice.CheckRange(a, 0, n * (aBf16 ? 2 : 4), nameof(a));
        CudaDevice.CheckRange(b, 0, n * (bBf16 ? 2 : 4), nameof(b));
        CudaDevice.CheckRange(y, 0, n * (yBf16 ? 2 : 4), nameof(y));
        device.MakeCurrent();
        var f = device.Function("residual.cu", "add_mixed");
        ulong pa = a.Pointer, pb = b.Pointer, py = y.Pointer;
        int fa = aBf16 ? 1 : 0, fb = bBf16 ? 1 : 0, fy = yBf16 ? 1 : 0;
        void** args = stackalloc void*[] { &pa, &fa, &pb, &fb, &py, &fy, &n };
        device.Launch(f, device.GridFor(n, 256), 1, 1, 256, 0, args, "add_mixed");
    }
}

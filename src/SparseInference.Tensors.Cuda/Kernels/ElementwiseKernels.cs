using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Kernels;

/// <summary>
/// The kernels of elementwise.cu, FP32 arithmetic: LayerNorm (with an optional BF16 copy of its output), bias, GELU, add,
/// scale, sigmoid, softmax, and the FP32 ↔ BF16 conversions. Every call is queued on the device's stream.
/// </summary>
public sealed unsafe class ElementwiseKernels
{
    private readonly CudaDevice device;

    internal ElementwiseKernels(CudaDevice device) => this.device = device;

    /// <summary>
    /// y = LayerNorm(x)·γ + β over rows of <paramref name="cols"/> values, biased variance; <paramref name="y16"/>
    /// (optional) receives the same values rounded to BF16; without <paramref name="writeFloat32"/> only those are written.
    /// </summary>
    public void LayerNorm(CudaBuffer x, CudaBuffer gamma, CudaBuffer beta, CudaBuffer y, int rows, int cols, float eps, CudaBuffer? y16 = null,
        bool writeFloat32 = true)
    {
        if (!writeFloat32 && y16 is null)
        {
            throw new ArgumentException("y16: expected a BF16 output when the FP32 output is not written.", nameof(y16));
        }

        CudaDevice.CheckRange(x, 0, (long)rows * cols * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, (long)rows * cols * 4, nameof(y));
        CudaDevice.CheckRange(gamma, 0, (long)cols * 4, nameof(gamma));
        CudaDevice.CheckRange(beta, 0, (long)cols * 4, nameof(beta));
        if (y16 is not null)
        {
            CudaDevice.CheckRange(y16, 0, (long)rows * cols * 2, nameof(y16));
        }

        device.MakeCurrent();
        ulong px = x.Pointer, pg = gamma.Pointer, pb = beta.Pointer, py = writeFloat32 ? y.Pointer : 0, py16 = y16?.Pointer ?? 0;

        // Rows of 128·k values (k ≤ 8) at 16-byte aligned addresses stay in registers: x is read once, 16 bytes at a time.
        var vector = cols % 128 == 0 && cols <= 1024 && (px | pg | pb | py) % 16 == 0 && py16 % 8 == 0;
        var name = vector ? "layer_norm_f32_vec" : "layer_norm_f32";
        var f = device.Function("elementwise.cu", name);
        void** args = stackalloc void*[] { &px, &pg, &pb, &py, &py16, &rows, &cols, &eps };
        const int warps = 8;
        device.Launch(f, (uint)((rows + warps - 1) / warps), 1, 1, warps * 32, 0, args, name);
    }

    /// <summary>
    /// y = GELU(x) (exact erf form, y may be x) and y16 = y rounded to BF16, in one pass. Falls back to two
    /// passes when n or the addresses do not allow 16-byte accesses.
    /// </summary>
    public void GeluWithBFloat16(CudaBuffer x, CudaBuffer y, CudaBuffer y16, long n, int cols)
    {
        CudaDevice.CheckRange(x, 0, n * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, n * 4, nameof(y));
        CudaDevice.CheckRange(y16, 0, n * 2, nameof(y16));
        if (n % 4 != 0 || x.Pointer % 16 != 0 || y.Pointer % 16 != 0 || y16.Pointer % 8 != 0)
        {
            BiasGelu(x, null, y, n, cols);
            ConvertToBFloat16(y, y16, n);
            return;
        }

        device.MakeCurrent();
        var f = device.Function("elementwise.cu", "gelu_f32_bf16x4");
        ulong px = x.Pointer, py = y.Pointer, py16 = y16.Pointer;
        var n4 = n / 4;
        void** args = stackalloc void*[] { &px, &py, &py16, &n4 };
        device.Launch(f, device.GridFor(n4, 256), 1, 1, 256, 0, args, "gelu_f32_bf16x4");
    }

    /// <summary>y = GELU(x + bias), exact erf form; bias broadcast over rows of <paramref name="cols"/>; bias may be null.</summary>
    public void BiasGelu(CudaBuffer x, CudaBuffer? bias, CudaBuffer y, long n, int cols)
    {
        CudaDevice.CheckRange(x, 0, n * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, n * 4, nameof(y));
        device.MakeCurrent();
        var f = device.Function("elementwise.cu", "bias_gelu_f32");
        ulong px = x.Pointer, pb = bias?.Pointer ?? 0, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &pb, &py, &n, &cols };
        device.Launch(f, device.GridFor(n, 256), 1, 1, 256, 0, args, "bias_gelu_f32");
    }

    /// <summary>y = x + bias, bias broadcast over rows of <paramref name="cols"/>.</summary>
    public void BiasAdd(CudaBuffer x, CudaBuffer bias, CudaBuffer y, long n, int cols)
    {
        CudaDevice.CheckRange(x, 0, n * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, n * 4, nameof(y));
        CudaDevice.CheckRange(bias, 0, (long)cols * 4, nameof(bias));
        device.MakeCurrent();
        var f = device.Function("elementwise.cu", "bias_add_f32");
        ulong px = x.Pointer, pb = bias.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &pb, &py, &n, &cols };
        device.Launch(f, device.GridFor(n, 256), 1, 1, 256, 0, args, "bias_add_f32");
    }

    /// <summary>y = a + b (residual connection).</summary>
    public void Add(CudaBuffer a, CudaBuffer b, CudaBuffer y, long n)
    {
        CudaDevice.CheckRange(a, 0, n * 4, nameof(a));
        CudaDevice.CheckRange(b, 0, n * 4, nameof(b));
        CudaDevice.CheckRange(y, 0, n * 4, nameof(y));
        device.MakeCurrent();
        var f = device.Function("elementwise.cu", "add_f32");
        ulong pa = a.Pointer, pb = b.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &pa, &pb, &py, &n };
        device.Launch(f, device.GridFor(n, 256), 1, 1, 256, 0, args, "add_f32");
    }

    /// <summary>y = alpha·x.</summary>
    public void Scale(CudaBuffer x, float alpha, CudaBuffer y, long n)
    {
        CudaDevice.CheckRange(x, 0, n * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, n * 4, nameof(y));
        device.MakeCurrent();
        var f = device.Function("elementwise.cu", "scale_f32");
        ulong px = x.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &alpha, &py, &n };
        device.Launch(f, device.GridFor(n, 256), 1, 1, 256, 0, args, "scale_f32");
    }

    /// <summary>y = 1/(1 + e^−x).</summary>
    public void Sigmoid(CudaBuffer x, CudaBuffer y, long n)
    {
        CudaDevice.CheckRange(x, 0, n * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, n * 4, nameof(y));
        device.MakeCurrent();
        var f = device.Function("elementwise.cu", "sigmoid_f32");
        ulong px = x.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &py, &n };
        device.Launch(f, device.GridFor(n, 256), 1, 1, 256, 0, args, "sigmoid_f32");
    }

    /// <summary>Softmax over rows of <paramref name="cols"/> values.</summary>
    public void Softmax(CudaBuffer x, CudaBuffer y, int rows, int cols)
    {
        CudaDevice.CheckRange(x, 0, (long)rows * cols * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, (long)rows * cols * 4, nameof(y));
        device.MakeCurrent();
        var f = device.Function("elementwise.cu", "softmax_f32");
        ulong px = x.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &py, &rows, &cols };
        const int warps = 8;
        device.Launch(f, (uint)((rows + warps - 1) / warps), 1, 1, warps * 32, 0, args, "softmax_f32");
    }

    /// <summary>y = GELU(y) in place on BF16 values (exact erf form, computed in FP32, rounded back to BF16).</summary>
    public void GeluBFloat16(CudaBuffer y, long n)
    {
        CudaDevice.CheckRange(y, 0, n * 2, nameof(y));
        device.MakeCurrent();
        ulong py = y.Pointer;
        if (n % 8 == 0 && py % 16 == 0)
        {
            var n8 = n / 8;
            void** args8 = stackalloc void*[] { &py, &n8 };
            device.Launch(device.Function("elementwise.cu", "gelu_bf16x8_inplace"), device.GridFor(n8, 256), 1, 1, 256, 0, args8, "gelu_bf16x8_inplace");
            return;
        }

        void** args = stackalloc void*[] { &py, &n };
        device.Launch(device.Function("elementwise.cu", "gelu_bf16_inplace"), device.GridFor(n, 256), 1, 1, 256, 0, args, "gelu_bf16_inplace");
    }

    /// <summary>FP32 → BF16 (round to nearest even).</summary>
    public void ConvertToBFloat16(CudaBuffer x, CudaBuffer y, long n)
    {
        CudaDevice.CheckRange(x, 0, n * 4, nameof(x));
        CudaDevice.CheckRange(y, 0, n * 2, nameof(y));
        device.MakeCurrent();
        ulong px = x.Pointer, py = y.Pointer;
        if (n % 4 == 0 && px % 16 == 0 && py % 8 == 0)
        {
            var n4 = n / 4;
            void** args4 = stackalloc void*[] { &px, &py, &n4 };
            device.Launch(device.Function("elementwise.cu", "f32_to_bf16_x4"), device.GridFor(n4, 256), 1, 1, 256, 0, args4, "f32_to_bf16_x4");
            return;
        }

        var f = device.Function("elementwise.cu", "f32_to_bf16_kernel");
        void** args = stackalloc void*[] { &px, &py, &n };
        device.Launch(f, device.GridFor(n, 256), 1, 1, 256, 0, args, "f32_to_bf16_kernel");
    }

    /// <summary>BF16 → FP32.</summary>
    public void ConvertToFloat32(CudaBuffer x, CudaBuffer y, long n)
    {
        CudaDevice.CheckRange(x, 0, n * 2, nameof(x));
        CudaDevice.CheckRange(y, 0, n * 4, nameof(y));
        device.MakeCurrent();
        ulong px = x.Pointer, py = y.Pointer;
        if (n % 4 == 0 && px % 8 == 0 && py % 16 == 0)
        {
            var n4 = n / 4;
            void** args4 = stackalloc void*[] { &px, &py, &n4 };
            device.Launch(device.Function("elementwise.cu", "bf16_to_f32_x4"), device.GridFor(n4, 256), 1, 1, 256, 0, args4, "bf16_to_f32_x4");
            return;
        }

        var f = device.Function("elementwise.cu", "bf16_to_f32_kernel");
        void** args = stackalloc void*[] { &px, &py, &n };
        device.Launch(f, device.GridFor(n, 256), 1, 1, 256, 0, args, "bf16_to_f32_kernel");
    }
}

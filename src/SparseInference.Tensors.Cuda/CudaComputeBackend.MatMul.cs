using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

// Matrix products: FP32 cuBLAS, BF16 operands through cuBLASLt, BF16 outputs and a BF16 residual C, the small-K kernel.
public sealed partial class CudaComputeBackend
{
    public void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        RequireF32(a, nameof(a));
        RequireF32(b, nameof(b));
        RequireFloat(c, nameof(c));
        var g = MatMulGeometry.Resolve(a, b, c, options, bias);
        if (bias is not null)
        {
            RequireF32(bias, nameof(bias));
        }

        if (SmallKProduct(a, b, c, g, options, bias))
        {
            return;
        }

        if (c.DType == DType.BF16)
        {
            MatMulIntoBFloat16(a, b, c, g, options, bias);
            return;
        }

        var n = c.ElementCount;
        if (MatMulPrecision == CudaMatMulPrecision.BFloat16 && g.Batch == 1 && options.Beta == 0 && g.M > 0 && g.N > 0 && g.K > 0
            && Bf16OutputProduct(a, b, c, g, options, bias))
        {
            return;
        }

        var biasView = bias is null ? null : View(bias, nameof(bias));
        if (MatMulPrecision != CudaMatMulPrecision.Float32 && g.M > 0 && g.N > 0 && g.K > 0)
        {
            // BF16 copies of the operands (kept: a weight is converted once), product on the BF16 tensor cores with
            // FP32 accumulation into the FP32 output. The stream orders conversions, product and buffer reuse.
            var a16 = Bf16Of(a, nameof(a));
            var b16 = Bf16Of(b, nameof(b));
            var out32 = Output(c, nameof(c), reads: options.Beta != 0);
            if (g.Batch == 1)
            {
                // cuBLASLt adds the bias in the product's epilogue; GELU and the output's BF16 copy follow in one pass.
                if (!Gpu.Gemm.GemmBFloat16(a16, b16, out32, g.M, g.N, g.K, options.TransposeA, options.TransposeB, options.Alpha, options.Beta, biasView))
                {
                    Gpu.Gemm.Gemm(a16, b16, out32, g.M, g.N, g.K, options.TransposeA, options.TransposeB,
                        1, 0, 0, 0, options.Alpha, options.Beta, CudaElementType.BFloat16, CudaElementType.Float32);
                    if (biasView is not null)
                    {
                        Gpu.Elementwise.BiasAdd(out32, biasView, out32, n, g.N);
                    }
                }

                if (options.Activation == Activation.Gelu)
                {
                    var out16 = Gpu.Allocate(Math.Max(2, n * 2), MemoryCategory.Workspace);
                    Gpu.Elementwise.GeluWithBFloat16(out32, out32, out16, n, g.N);
                    SetBf16Copy(c, out16);
                }

                return;
            }

            Gpu.Gemm.Gemm(a16, b16, out32, g.M, g.N, g.K, options.TransposeA, options.TransposeB,
                g.Batch, g.StrideA, g.StrideB, g.StrideC, options.Alpha, options.Beta, CudaElementType.BFloat16, CudaElementType.Float32);
            Epilogue(out32, biasView, options.Activation, n, g.N);
            return;
        }

        var av = View(a, nameof(a));
        var bv = View(b, nameof(b));
        var cv = Output(c, nameof(c), reads: options.Beta != 0);
        if (g.M > 0 && g.N > 0)
        {
            if (g.K == 0)
            {
                Gpu.Elementwise.Scale(cv, options.Beta, cv, c.ElementCount);
            }
            else
            {
                Gpu.Gemm.Gemm(av, bv, cv, g.M, g.N, g.K, options.TransposeA, options.TransposeB,
                    g.Batch, g.StrideA, g.StrideB, g.StrideC, options.Alpha, options.Beta);
            }
        }

        Epilogue(cv, biasView, options.Activation, n, g.N);
    }

    /// <summary>
    /// <see cref="CudaMatMulPrecision.BFloat16"/>: C = act(A·B + bias) stored in BF16 only (its FP32 memory is filled on
    /// the first FP32 read). False, with nothing queued, where cuBLASLt has no algorithm for the shape.
    /// </summary>
    private bool Bf16OutputProduct(Tensor a, Tensor b, Tensor c, MatMulGeometry g, MatMulOptions options, Tensor? bias)
    {
        // c is marked written only after the product is queued: its old copy may be an operand here, and a block
        // returned to the pool earlier could be handed out as this product's output while the product reads it.
        RawView(c, nameof(c));
        var a16 = Bf16Of(a, nameof(a));
        var b16 = Bf16Of(b, nameof(b));
        var bias16 = bias is null ? null : Bf16Of(bias, nameof(bias));
        var out16 = Gpu.Allocate(Math.Max(2, c.ElementCount * 2), MemoryCategory.Workspace);
        var gelu = options.Activation == Activation.Gelu;
        var epilogueGelu = gelu && GeluInEpilogue;
        if (!Gpu.Gemm.GemmBFloat16(a16, b16, out16, g.M, g.N, g.K, options.TransposeA, options.TransposeB, options.Alpha, 0f, bias16,
                bf16Output: true, gelu: epilogueGelu))
        {
            out16.Dispose();
            return false;
        }

        if (gelu && !epilogueGelu)
        {
            Gpu.Elementwise.GeluBFloat16(out16, c.ElementCount);
        }

        Output(c, nameof(c), reads: false);
        SetBf16Copy(c, out16, fp32Pending: true);
        return true;
    }

    /// <summary>Largest inner dimension that <see cref="SmallKProduct"/> takes.</summary>
    internal const int SmallK = 16;

    /// <summary>
    /// With BF16 products: a Linear product with K ≤ <see cref="SmallK"/> (the input projection of a few channels) in
    /// FP32 by one tiled kernel (cuBLASLt's tiles are far deeper than K: 0.08 ms for the 32 MiB output of an 8-channel
    /// projection at batch 8 × T 4096); C FP32 or BF16. False where the product is not of that form.
    /// </summary>
    private bool SmallKProduct(Tensor a, Tensor b, Tensor c, MatMulGeometry g, MatMulOptions options, Tensor? bias)
    {
        if (MatMulPrecision == CudaMatMulPrecision.Float32 || g.Batch != 1 || g.K < 1 || g.K > SmallK || g.M < 1 || g.M > 65535L * 64 || g.N < 1
            || !options.TransposeB || options.TransposeA || options.Activation != Activation.None)
        {
            return false;
        }

        var av = View(a, nameof(a));
        var bv = View(b, nameof(b));
        var biasView = bias is null ? null : View(bias, nameof(bias));
        var cv = Output(c, nameof(c), reads: options.Beta != 0);
        Gpu.Gemm.LinearSmallK(av, bv, biasView, cv, c.DType == DType.BF16, options.Alpha, options.Beta, g.M, g.N, g.K);
        return true;
    }

    /// <summary>
    /// C stored in BF16 (a BF16 residual stream): C = act(alpha·A·B + beta·C + bias) by cuBLASLt with BF16 C and D,
    /// FP32 accumulation, bias in the epilogue, so the residual is read and written once in BF16. Elsewhere (FP32
    /// products, batched products, GELU over an accumulation, no algorithm for the shape) C is widened into an FP32
    /// temporary, the FP32 path runs, and the result is rounded back.
    /// </summary>
    private void MatMulIntoBFloat16(Tensor a, Tensor b, Tensor c, MatMulGeometry g, MatMulOptions options, Tensor? bias)
    {
        var gelu = options.Activation == Activation.Gelu;
        if (MatMulPrecision != CudaMatMulPrecision.Float32 && g.Batch == 1 && g.M > 0 && g.N > 0 && g.K > 0 && !(gelu && options.Beta != 0))
        {
            var cv = RawView(c, nameof(c));
            var a16 = Bf16Of(a, nameof(a));
            var b16 = Bf16Of(b, nameof(b));
            var bias16 = bias is null ? null : Bf16Of(bias, nameof(bias));
            var epilogueGelu = gelu && GeluInEpilogue;
            if (Gpu.Gemm.GemmBFloat16(a16, b16, cv, g.M, g.N, g.K, options.TransposeA, options.TransposeB, options.Alpha, options.Beta, bias16,
                    bf16Output: true, gelu: epilogueGelu))
            {
                if (gelu && !epilogueGelu)
                {
                    Gpu.Elementwise.GeluBFloat16(cv, c.ElementCount);
                }

                Output(c, nameof(c), reads: true);
                return;
            }
        }

        using var wide = Allocate(c.Shape, DType.F32, zeroed: false);
        if (options.Beta != 0)
        {
            Convert(c, wide);
        }

        MatMul(a, b, wide, options, bias);
        Convert(wide, c);
    }

    private void Epilogue(CudaBuffer c, CudaBuffer? bias, Activation activation, long n, int cols)
    {
        if (activation == Activation.Gelu)
        {
            Gpu.Elementwise.BiasGelu(c, bias, c, n, cols);
        }
        else if (bias is not null)
        {
            Gpu.Elementwise.BiasAdd(c, bias, c, n, cols);
        }
    }
}

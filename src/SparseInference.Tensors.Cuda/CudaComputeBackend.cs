using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// <see cref="IComputeBackend"/> on a CUDA GPU. Tensors live in device memory from the backend's pool;
/// FP32 ops run as NVRTC kernels, matrix products through cuBLAS (FP32 compute), attention through the
/// flash-style BF16 kernel (FP32 operands are converted on the device, accumulation is FP32).
/// Ops it lacks report <see cref="Supports"/> false so that callers fall back to the CPU backend.
/// <para>
/// BF16 copies: a tensor read as a BF16 operand (attention inputs, and matrix-product operands with
/// <see cref="CudaMatMulPrecision.BFloat16Inputs"/>) keeps its rounded copy until the tensor is next written, so a
/// weight is converted once, not per product; ops whose output feeds such a read (LayerNorm, bias+GELU of a product,
/// attention) write the copy in the same pass. Every op marks its output written, which drops the copy. One backend
/// serves one caller at a time (one stream).
/// </para>
/// <para>
/// BF16 tensors: with <see cref="CudaMatMulPrecision.BFloat16"/> the contract's <see cref="ResidualDType"/> is BF16, and
/// the residual stream's ops (Add, LayerNorm, MatMul's C, Embedding's output, ScatterAddRows' destination) take BF16
/// tensors: read widened, computed in FP32, stored rounded (docs/model-format.md, "Precision").
/// </para>
/// </summary>
public sealed partial class CudaComputeBackend : IComputeBackend
{
    private readonly bool ownsDevice;

    public CudaComputeBackend(CudaBackend device, bool ownsDevice = true)
    {
        ArgumentNullException.ThrowIfNull(device);
        Device = device;
        this.ownsDevice = ownsDevice;
    }

    /// <summary>
    /// Opens GPU <paramref name="ordinal"/>; false with the reason (what is missing, what to install)
    /// where CUDA cannot be used.
    /// </summary>
    public static bool TryCreate(out CudaComputeBackend? backend, out string? reason, int ordinal = 0)
    {
        backend = null;
        if (!CudaBackend.TryCreate(out var device, out reason, ordinal))
        {
            return false;
        }

        backend = new CudaComputeBackend(device!);
        return true;
    }

    /// <summary>
    /// How F32 <see cref="MatMul"/> computes: <see cref="CudaMatMulPrecision.Float32"/> (exact FP32 cuBLAS, the
    /// default and the contract's reference precision) or <see cref="CudaMatMulPrecision.BFloat16Inputs"/>
    /// (operands rounded to BF16, tensor cores, FP32 accumulation: the model-serving setting).
    /// </summary>
    public CudaMatMulPrecision MatMulPrecision { get; set; } = CudaMatMulPrecision.Float32;

    /// <summary>
    /// With <see cref="CudaMatMulPrecision.BFloat16"/> (and for products into a BF16 tensor): GELU computed by cuBLASLt
    /// in the product's epilogue instead of a separate exact erf pass over the BF16 output. On by default: cuBLASLt
    /// documents no formula for its GELU, but over pre-activations in [−6, 6] it is 2.8e-3 (relative) from the exact
    /// FP32 GELU, against 3.2e-3 for the exact pass on BF16 inputs (the self-test measures both on every run), inside
    /// the BF16 tolerance of docs/model-format.md ("Precision"). False selects the exact pass.
    /// </summary>
    public bool GeluInEpilogue { get; set; } = true;

    /// <summary>
    /// With <see cref="CudaMatMulPrecision.BFloat16"/>: the model's residual stream is stored in BF16
    /// (<see cref="ResidualDType"/> = BF16), so the accumulating products read and write it in BF16 and LayerNorm reads
    /// BF16 rows. On by default; false keeps the residual stream in FP32 (the earlier path, for comparison).
    /// </summary>
    public bool BFloat16Residual { get; set; } = true;

    /// <summary>
    /// The contract's residual dtype (<see cref="IComputeBackend.ResidualDType"/>): BF16 with
    /// <see cref="CudaMatMulPrecision.BFloat16"/> products and <see cref="BFloat16Residual"/>, otherwise F32.
    /// Read by a model when it allocates its activations.
    /// </summary>
    public DType ResidualDType => ResidualDTypeFor(MatMulPrecision, BFloat16Residual);

    /// <summary>The residual dtype a backend with these settings reports (BF16 only for BF16 outputs and a BF16 residual).</summary>
    public static DType ResidualDTypeFor(CudaMatMulPrecision precision, bool bfloat16Residual) =>
        precision == CudaMatMulPrecision.BFloat16 && bfloat16Residual ? DType.BF16 : DType.F32;

    /// <summary>The device, its kernels and memory pool.</summary>
    public CudaBackend Device { get; }

    public string Name => $"cuda:{Device.Device.Ordinal}";

    DeviceKind IComputeBackend.Device => DeviceKind.Cuda;

    /// <summary>Device memory by use (weights, workspace, activations), for metrics.</summary>
    public DeviceMemoryStatistics MemoryStatistics => Device.Memory.Statistics;

    public bool Supports(TensorOp op, DType dtype) => SupportsOp(op, dtype);

    /// <summary>What <see cref="Supports"/> answers (the same on every device).</summary>
    internal static bool SupportsOp(TensorOp op, DType dtype) => op switch
    {
        TensorOp.Copy or TensorOp.Embedding or TensorOp.Gather => true,
        TensorOp.TopK => dtype == DType.F32,
        // BF16 in the residual stream's places (IComputeBackend.ResidualDType): Add, LayerNorm's x and output,
        // MatMul's C, ScatterAddRows' destination, conversions.
        TensorOp.Convert or TensorOp.Add or TensorOp.LayerNorm or TensorOp.MatMul or TensorOp.ScatterAddRows => dtype is DType.F32 or DType.BF16,
        TensorOp.BiasAdd or TensorOp.Scale or TensorOp.Gelu or TensorOp.Sigmoid or TensorOp.Softmax or TensorOp.Attention => dtype == DType.F32,
        _ => false,
    };

    public Tensor Allocate(Shape shape, DType dtype, bool zeroed = true) => Allocate(shape, dtype, zeroed, MemoryCategory.Activations);

    /// <summary>Allocates with a memory category, so weights count as weights in <see cref="MemoryStatistics"/>.</summary>
    public Tensor Allocate(Shape shape, DType dtype, bool zeroed, MemoryCategory category)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var bytes = Math.Max(1, shape.ElementCount * dtype.SizeInBytes());
        var buffer = new CudaTensorBuffer(this, Device.Allocate(bytes, category));
        if (zeroed)
        {
            Device.Zero(buffer.Memory);
        }

        return new Tensor(buffer, shape, dtype);
    }

    /// <summary>
    /// A weight stays on the device for the model's lifetime: from now on its memory counts as weights in
    /// <see cref="MemoryStatistics"/> (and in the server's device memory metrics). Its BF16 operand copy is made on first use.
    /// </summary>
    public void PrepareWeight(Tensor weight, bool transposed)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Buffer is CudaTensorBuffer buffer)
        {
            Device.Memory.Recategorize(buffer.Memory, MemoryCategory.Weights);
        }
    }

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination)
    {
        var view = Output(destination, nameof(destination));
        if (source.Length != destination.SizeInBytes)
        {
            throw new ArgumentException($"source: expected {destination.SizeInBytes} bytes for {destination.Shape} {destination.DType}, got {source.Length}.", nameof(source));
        }

        Device.Upload(source, view);
    }

    public void CopyToHost(Tensor source, Span<byte> destination)
    {
        var view = View(source, nameof(source));
        if (destination.Length != source.SizeInBytes)
        {
            throw new ArgumentException($"destination: expected {source.SizeInBytes} bytes for {source.Shape} {source.DType}, got {destination.Length}.", nameof(destination));
        }

        Device.Download(view, destination);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        SameCount(source, destination, nameof(destination));
        if (source.DType != destination.DType)
        {
            throw new ArgumentException($"destination: expected {source.DType}, got {destination.DType}.", nameof(destination));
        }

        var from = View(source, nameof(source));
        Device.Copy(from, Output(destination, nameof(destination)), source.SizeInBytes);
    }

    public void Convert(Tensor source, Tensor destination)
    {
        SameCount(source, destination, nameof(destination));
        var s = View(source, nameof(source));
        var d = Output(destination, nameof(destination));
        switch (source.DType, destination.DType)
        {
            case (DType.F32, DType.BF16):
                Device.ConvertToBFloat16(s, d, source.ElementCount);
                break;
            case (DType.BF16, DType.F32):
                Device.ConvertToFloat32(s, d, source.ElementCount);
                break;
            case var (from, to) when from == to:
                Device.Copy(s, d, source.SizeInBytes);
                break;
            default:
                throw new NotSupportedException($"Backend '{Name}' converts F32 ↔ BF16 only, not {source.DType} → {destination.DType}.");
        }
    }

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
                if (!Device.GemmBFloat16(a16, b16, out32, g.M, g.N, g.K, options.TransposeA, options.TransposeB, options.Alpha, options.Beta, biasView))
                {
                    Device.Gemm(a16, b16, out32, g.M, g.N, g.K, options.TransposeA, options.TransposeB,
                        1, 0, 0, 0, options.Alpha, options.Beta, CudaElementType.BFloat16, CudaElementType.Float32);
                    if (biasView is not null)
                    {
                        Device.BiasAdd(out32, biasView, out32, n, g.N);
                    }
                }

                if (options.Activation == Activation.Gelu)
                {
                    var out16 = Device.Allocate(Math.Max(2, n * 2), MemoryCategory.Workspace);
                    Device.GeluWithBFloat16(out32, out32, out16, n, g.N);
                    SetBf16Copy(c, out16);
                }

                return;
            }

            Device.Gemm(a16, b16, out32, g.M, g.N, g.K, options.TransposeA, options.TransposeB,
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
                Device.Scale(cv, options.Beta, cv, c.ElementCount);
            }
            else
            {
                Device.Gemm(av, bv, cv, g.M, g.N, g.K, options.TransposeA, options.TransposeB,
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
        var out16 = Device.Allocate(Math.Max(2, c.ElementCount * 2), MemoryCategory.Workspace);
        var gelu = options.Activation == Activation.Gelu;
        var epilogueGelu = gelu && GeluInEpilogue;
        if (!Device.GemmBFloat16(a16, b16, out16, g.M, g.N, g.K, options.TransposeA, options.TransposeB, options.Alpha, 0f, bias16,
                bf16Output: true, gelu: epilogueGelu))
        {
            out16.Dispose();
            return false;
        }

        if (gelu && !epilogueGelu)
        {
            Device.GeluBFloat16(out16, c.ElementCount);
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
        Device.LinearSmallK(av, bv, biasView, cv, c.DType == DType.BF16, options.Alpha, options.Beta, g.M, g.N, g.K);
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
            if (Device.GemmBFloat16(a16, b16, cv, g.M, g.N, g.K, options.TransposeA, options.TransposeB, options.Alpha, options.Beta, bias16,
                    bf16Output: true, gelu: epilogueGelu))
            {
                if (gelu && !epilogueGelu)
                {
                    Device.GeluBFloat16(cv, c.ElementCount);
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
            Device.BiasGelu(c, bias, c, n, cols);
        }
        else if (bias is not null)
        {
            Device.BiasAdd(c, bias, c, n, cols);
        }
    }

    public void BiasAdd(Tensor x, Tensor bias, Tensor output)
    {
        RequireF32(x, nameof(x));
        RequireF32(bias, nameof(bias));
        SameShape(x, output, nameof(output));
        var cols = x.Dim(-1);
        if (bias.Rank != 1 || bias.Dim(0) != cols)
        {
            throw new ArgumentException($"bias: expected shape [{cols}], got {bias.Shape}.", nameof(bias));
        }

        Device.BiasAdd(View(x, nameof(x)), View(bias, nameof(bias)), Output(output, nameof(output)), x.ElementCount, cols);
    }

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        RequireFloat(a, nameof(a));
        SameShape(a, b, nameof(b));
        SameShape(a, output, nameof(output));
        RequireFloat(b, nameof(b));
        RequireFloat(output, nameof(output));
        if (a.DType == DType.F32 && b.DType == DType.F32 && output.DType == DType.F32)
        {
            Device.Add(View(a, nameof(a)), View(b, nameof(b)), Output(output, nameof(output)), a.ElementCount);
            return;
        }

        // A BF16 residual stream (the positions added to the input projection): FP32 sum, rounded when stored in BF16.
        Device.AddMixed(View(a, nameof(a)), a.DType == DType.BF16, View(b, nameof(b)), b.DType == DType.BF16,
            Output(output, nameof(output)), output.DType == DType.BF16, a.ElementCount);
    }

    public void Scale(Tensor x, float alpha, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Device.Scale(View(x, nameof(x)), alpha, Output(output, nameof(output)), x.ElementCount);
    }

    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output)
    {
        RequireFloat(x, nameof(x));
        SameShape(x, output, nameof(output));
        RequireFloat(output, nameof(output));
        var cols = x.Dim(-1);
        if (gamma.Rank != 1 || gamma.Dim(0) != cols)
        {
            throw new ArgumentException($"gamma: expected shape [{cols}], got {gamma.Shape}.", nameof(gamma));
        }

        if (beta.Rank != 1 || beta.Dim(0) != cols)
        {
            throw new ArgumentException($"beta: expected shape [{cols}], got {beta.Shape}.", nameof(beta));
        }

        var rows = checked((int)x.Shape.LeadingCount);
        var xv = View(x, nameof(x));
        var y = Output(output, nameof(output));
        var g = View(gamma, nameof(gamma));
        var bt = View(beta, nameof(beta));
        if (output.DType == DType.BF16)
        {
            // Normalised rows stored in BF16 only. (The FP32-input kernel checks its y against x's FP32 size and
            // writes no FP32 values here.)
            if (x.DType == DType.BF16)
            {
                Device.LayerNormBFloat16Input(xv, g, bt, null, y, rows, cols, epsilon);
            }
            else
            {
                Device.LayerNorm(xv, g, bt, xv, rows, cols, epsilon, y, writeFloat32: false);
            }

            return;
        }

        // With BF16 products the normalised rows are a product's operand next: write their BF16 copy in this pass.
        // With BFloat16 products the rows are kept in BF16 only until an FP32 read (like a product's output).
        var y16 = MatMulPrecision != CudaMatMulPrecision.Float32 && output.ElementCount > 0
            ? Device.Allocate(output.ElementCount * 2, MemoryCategory.Workspace)
            : null;
        var bf16Only = y16 is not null && MatMulPrecision == CudaMatMulPrecision.BFloat16;
        if (x.DType == DType.BF16)
        {
            Device.LayerNormBFloat16Input(xv, g, bt, bf16Only ? null : y, y16, rows, cols, epsilon);
        }
        else
        {
            Device.LayerNorm(xv, g, bt, y, rows, cols, epsilon, y16, writeFloat32: !bf16Only);
        }

        if (y16 is not null)
        {
            SetBf16Copy(output, y16, fp32Pending: bf16Only);
        }
    }

    public void Gelu(Tensor x, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Device.BiasGelu(View(x, nameof(x)), null, Output(output, nameof(output)), x.ElementCount, Math.Max(1, x.Rank == 0 ? 1 : x.Dim(-1)));
    }

    public void Sigmoid(Tensor x, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Device.Sigmoid(View(x, nameof(x)), Output(output, nameof(output)), x.ElementCount);
    }

    public void Softmax(Tensor x, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Device.Softmax(View(x, nameof(x)), Output(output, nameof(output)), checked((int)x.Shape.LeadingCount), x.Dim(-1));
    }

    public void Embedding(Tensor table, Tensor ids, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(output);
        if (table.DType == DType.F32 && output.DType == DType.BF16)
        {
            // Rows of an FP32 table into a BF16 residual stream: gathered, then rounded (once per forward).
            using var wide = Allocate(output.Shape, DType.F32, zeroed: false);
            Embedding(table, ids, wide);
            Convert(wide, output);
            return;
        }

        RequireI32(ids, nameof(ids));
        if (table.Rank != 2)
        {
            throw new ArgumentException($"table: expected rank 2 [V, D], got {table.Shape}.", nameof(table));
        }

        if (output.DType != table.DType)
        {
            throw new ArgumentException($"output: expected dtype {table.DType}, got {output.DType}.", nameof(output));
        }

        var expected = new Shape([.. ids.Shape.Dims, table.Dim(1)]);
        if (output.Shape != expected)
        {
            throw new ArgumentException($"output: expected shape {expected}, got {output.Shape}.", nameof(output));
        }

        CheckIndices(ids, table.Dim(0), "ids", distinct: false);
        Device.GatherRows(View(table, nameof(table)), View(ids, nameof(ids)), Output(output, nameof(output)),
            ids.ElementCount, (long)table.Dim(1) * table.DType.SizeInBytes());
    }

    public void Gather(Tensor source, Tensor indices, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(source);
        RequireI32(indices, nameof(indices));
        if (source.Rank < 1)
        {
            throw new ArgumentException($"source: expected rank ≥ 1, got {source.Shape}.", nameof(source));
        }

        if (indices.Rank != 1)
        {
            throw new ArgumentException($"indices: expected rank 1 [M], got {indices.Shape}.", nameof(indices));
        }

        if (output.DType != source.DType)
        {
            throw new ArgumentException($"output: expected dtype {source.DType}, got {output.DType}.", nameof(output));
        }

        var dims = source.Shape.ToArray();
        dims[0] = indices.Dim(0);
        var expected = new Shape(dims);
        if (output.Shape != expected)
        {
            throw new ArgumentException($"output: expected shape {expected}, got {output.Shape}.", nameof(output));
        }

        CheckIndices(indices, source.Dim(0), "indices", distinct: false);
        Device.GatherRows(View(source, nameof(source)), View(indices, nameof(indices)), Output(output, nameof(output)),
            indices.ElementCount, source.Shape.ProductOf(1, source.Rank) * source.DType.SizeInBytes());
    }

    public void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.DType == DType.BF16)
        {
            // A BF16 residual stream (the gated pattern): widened, rows added in FP32, rounded back.
            using var wide = Allocate(destination.Shape, DType.F32, zeroed: false);
            Convert(destination, wide);
            ScatterAddRows(source, indices, wide, rowScale);
            Convert(wide, destination);
            return;
        }

        RequireF32(source, nameof(source));
        RequireF32(destination, nameof(destination));
        RequireI32(indices, nameof(indices));
        if (source.Rank < 1 || destination.Rank != source.Rank)
        {
            throw new ArgumentException($"destination: expected rank {source.Rank} like source {source.Shape}, got {destination.Shape}.", nameof(destination));
        }

        if (indices.Rank != 1 || indices.Dim(0) != source.Dim(0))
        {
            throw new ArgumentException($"indices: expected shape [{source.Dim(0)}], got {indices.Shape}.", nameof(indices));
        }

        for (var a = 1; a < source.Rank; a++)
        {
            if (source.Dim(a) != destination.Dim(a))
            {
                throw new ArgumentException($"destination: expected dimension {a} = {source.Dim(a)} like source, got {destination.Dim(a)}.", nameof(destination));
            }
        }

        if (rowScale is not null)
        {
            RequireF32(rowScale, nameof(rowScale));
            if (rowScale.Rank != 1 || rowScale.Dim(0) != source.Dim(0))
            {
                throw new ArgumentException($"rowScale: expected shape [{source.Dim(0)}], got {rowScale.Shape}.", nameof(rowScale));
            }
        }

        CheckIndices(indices, destination.Dim(0), "indices", distinct: true);
        Device.ScatterAddRows(View(source, nameof(source)), View(indices, nameof(indices)), rowScale is null ? null : View(rowScale, nameof(rowScale)),
            Output(destination, nameof(destination), reads: true), source.Dim(0), source.Shape.ProductOf(1, source.Rank));
    }

    public void TopK(Tensor x, int k, Tensor values, Tensor indices)
    {
        RequireF32(x, nameof(x));
        RequireF32(values, nameof(values));
        RequireI32(indices, nameof(indices));
        if (x.Rank < 1)
        {
            throw new ArgumentException($"x: expected rank ≥ 1, got {x.Shape}.", nameof(x));
        }

        var n = x.Dim(-1);
        if (k < 0 || k > n)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, $"k: expected 0 ≤ k ≤ {n} (the last dimension of x).");
        }

        var dims = x.Shape.ToArray();
        dims[^1] = k;
        var expected = new Shape(dims);
        if (values.Shape != expected)
        {
            throw new ArgumentException($"values: expected shape {expected}, got {values.Shape}.", nameof(values));
        }

        if (indices.Shape != expected)
        {
            throw new ArgumentException($"indices: expected shape {expected}, got {indices.Shape}.", nameof(indices));
        }

        if (k > 0 && x.ElementCount > 0)
        {
            Device.TopK(View(x, nameof(x)), Output(values, nameof(values)), Output(indices, nameof(indices)), checked((int)x.Shape.LeadingCount), n, k);
        }
    }

    public AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery) =>
        throw Unsupported(TensorOp.TopKAttention);

    /// <summary>
    /// Whether <see cref="Attention"/> runs this call's geometry and layout (head dim 16/32/64/128, block size
    /// 16/32/64/128, 16-byte aligned rows); otherwise the caller falls back.
    /// </summary>
    public static bool SupportsAttention(AttentionInputs inputs, BlockLayout? layout, out string? why)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return CudaBackend.SupportsAttention(Geometry(inputs), layout is null ? null : ToCsr(layout), out why);
    }

    public AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var outOperand = inputs.OutputOperand(output);
        if (!validLengths.IsEmpty && validLengths.Length != inputs.Batch)
        {
            throw new ArgumentException($"validLengths: expected {inputs.Batch} entries (one per sequence) or none, got {validLengths.Length}.", nameof(validLengths));
        }

        foreach (var len in validLengths)
        {
            if (len < 0 || len > inputs.SeqLen)
            {
                throw new ArgumentException($"validLengths: expected values in [0, {inputs.SeqLen}], got {len}.", nameof(validLengths));
            }
        }

        var geometry = Geometry(inputs, outOperand);
        var deviceLayout = layout is null ? null : DeviceLayout(layout);
        if (!CudaBackend.SupportsAttention(geometry, deviceLayout?.Layout, out var why))
        {
            throw new NotSupportedException($"Backend '{Name}' cannot run this attention call: {why}.");
        }

        // The kernel reads BF16: each distinct operand tensor's BF16 copy (converted once, kept until it is written).
        CudaBuffer At(AttentionOperand op) => CudaBuffer.View(Bf16Of(op.Tensor, "inputs"), op.Offset * 2, (op.Tensor.ElementCount - op.Offset) * 2);

        var q = At(inputs.Query);
        var k = At(inputs.Key);
        var v = At(inputs.Value);
        Output(output, nameof(output), reads: false);
        var out16 = Device.Allocate(Math.Max(2, output.ElementCount * 2), MemoryCategory.Workspace);
        try
        {
            Device.Attention(q, k, v, out16, geometry, deviceLayout, validLengths.IsEmpty ? null : DeviceLengths(validLengths));
        }
        catch
        {
            out16.Dispose();
            throw;
        }

        // The kernel's output is BF16, so the FP32 output is exactly that copy widened: it is widened on the first
        // FP32 read, and the product that reads the output next takes the copy as it is. No synchronisation: the
        // stream orders every later use of these buffers.
        SetBf16Copy(output, out16, fp32Pending: true);
        return CountPairs(inputs, validLengths, layout);
    }

    /// <summary>Pairs computed: every valid (query, key) pair of each selected block, or Σ_b H·L_b² when dense.</summary>
    internal static AttentionResult CountPairs(AttentionInputs inputs, ReadOnlySpan<int> validLengths, BlockLayout? layout)
    {
        long computed = 0, dense = 0;
        for (var b = 0; b < inputs.Batch; b++)
        {
            long len = validLengths.IsEmpty ? inputs.SeqLen : validLengths[b];
            dense += inputs.Heads * len * len;
            if (layout is null)
            {
                computed += inputs.Heads * len * len;
                continue;
            }

            var bs = layout.BlockSize;
            for (var h = 0; h < inputs.Heads; h++)
            {
                for (var qb = 0; qb < layout.QueryBlocks; qb++)
                {
                    var queries = Math.Clamp(len - ((long)qb * bs), 0, bs);
                    if (queries == 0)
                    {
                        continue;
                    }

                    foreach (var kb in layout.KeyBlocksOf(b, h, qb))
                    {
                        computed += queries * Math.Clamp(len - ((long)kb * bs), 0, bs);
                    }
                }
            }
        }

        return new AttentionResult(computed, dense);
    }

    /// <summary>The contract's layout as the kernel sees it (one row per head, or one shared row); no copy.</summary>
    internal static CsrBlockLayout ToCsr(BlockLayout layout) => new(layout);

    private static AttentionGeometry Geometry(AttentionInputs inputs, AttentionOperand? output = null)
    {
        static TensorStrides S(AttentionOperand op) => new(op.BatchStride, op.HeadStride, op.TokenStride);
        var o = output is { } op
            ? S(op)
            : inputs.HeadsMajor
                ? TensorStrides.BatchHeadToken(inputs.Heads, inputs.SeqLen, inputs.HeadDim)
                : TensorStrides.BatchTokenHead(inputs.Heads, inputs.SeqLen, inputs.HeadDim);
        return new AttentionGeometry(inputs.Batch, inputs.Heads, inputs.SeqLen, inputs.HeadDim, S(inputs.Query), S(inputs.Key), S(inputs.Value), o);
    }

    // ---- Device-side caches: block layouts and valid lengths -------------------------------------

    private const int CachedLayouts = 64;
    private readonly Dictionary<int, List<CudaBackend.DeviceBlockLayout>> layouts = [];
    private readonly Dictionary<string, CudaBuffer> lengthBuffers = new(StringComparer.Ordinal);
    private int cachedLayoutCount;

    /// <summary>
    /// The layout on the device, uploaded once per distinct content (the encoder builds an equal layout for every
    /// layer and forward of the same pattern and lengths), with its split plan.
    /// </summary>
    private CudaBackend.DeviceBlockLayout DeviceLayout(BlockLayout layout)
    {
        var hash = new HashCode();
        hash.Add(layout.BlockSize);
        hash.Add(layout.Batch);
        hash.Add(layout.Heads);
        hash.Add(layout.QueryBlocks);
        hash.Add(layout.SharedAcrossHeads);
        hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(layout.RowOffsets));
        hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(layout.KeyBlockIndices));
        var key = hash.ToHashCode();
        if (layouts.TryGetValue(key, out var bucket))
        {
            foreach (var candidate in bucket)
            {
                var c = candidate.Layout.Layout;
                if (ReferenceEquals(c, layout) || (c.BlockSize == layout.BlockSize && c.Batch == layout.Batch && c.Heads == layout.Heads
                    && c.QueryBlocks == layout.QueryBlocks && c.SharedAcrossHeads == layout.SharedAcrossHeads
                    && layout.RowOffsets.SequenceEqual(c.RowOffsets) && layout.KeyBlockIndices.SequenceEqual(c.KeyBlockIndices)))
                {
                    return candidate;
                }
            }
        }

        if (cachedLayoutCount >= CachedLayouts)
        {
            ClearLayoutCache();
        }

        var uploaded = Device.Upload(ToCsr(layout));
        if (!layouts.TryGetValue(key, out bucket))
        {
            layouts[key] = bucket = [];
        }

        bucket.Add(uploaded);
        cachedLayoutCount++;
        return uploaded;
    }

    /// <summary>Valid lengths on the device, uploaded once per distinct list.</summary>
    private CudaBuffer DeviceLengths(ReadOnlySpan<int> validLengths)
    {
        var key = string.Join(',', validLengths.ToArray());
        if (lengthBuffers.TryGetValue(key, out var cached))
        {
            return cached;
        }

        if (lengthBuffers.Count >= CachedLayouts)
        {
            foreach (var b in lengthBuffers.Values)
            {
                b.Dispose();
            }

            lengthBuffers.Clear();
        }

        var buffer = Device.Allocate(validLengths.Length * 4L, MemoryCategory.Workspace);
        Device.Upload(validLengths, buffer);
        lengthBuffers[key] = buffer;
        return buffer;
    }

    private void ClearLayoutCache()
    {
        foreach (var bucket in layouts.Values)
        {
            foreach (var l in bucket)
            {
                l.Dispose();
            }
        }

        layouts.Clear();
        cachedLayoutCount = 0;
    }

    /// <summary>
    /// Drops the cached layouts and valid lengths and gives every unused pooled block back to the driver
    /// (after a model is unloaded, so that the driver's free memory shows it).
    /// </summary>
    public void ReleaseCachedMemory()
    {
        Device.Synchronize();
        ClearLayoutCache();
        foreach (var b in lengthBuffers.Values)
        {
            b.Dispose();
        }

        lengthBuffers.Clear();
        Device.Memory.Trim();
    }

    public void Dispose()
    {
        ClearLayoutCache();
        foreach (var b in lengthBuffers.Values)
        {
            b.Dispose();
        }

        lengthBuffers.Clear();
        if (ownsDevice)
        {
            Device.Dispose();
        }
    }

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
        var copy = Device.Allocate(Math.Max(2, t.ElementCount * 2), MemoryCategory.Workspace);
        Device.ConvertToBFloat16(source, copy, t.ElementCount);
        buffer.KeepBf16Copy(t.ByteOffset, t.ElementCount, copy, fp32Pending: false);
        return copy;
    }

    /// <summary>
    /// Records <paramref name="copy"/> (owned from here on) as the BF16 copy of the tensor just written; with
    /// <paramref name="fp32Pending"/> the copy holds the values and the FP32 memory is filled on the first FP32 read.
    /// </summary>
    private static void SetBf16Copy(Tensor t, CudaBuffer copy, bool fp32Pending = false) =>
        ((CudaTensorBuffer)t.Buffer).KeepBf16Copy(t.ByteOffset, t.ElementCount, copy, fp32Pending);

    /// <summary>Widens a BF16-only output into its FP32 memory.</summary>
    private void FillFp32(CudaTensorBuffer buffer)
    {
        var (offset, count, copy) = buffer.PendingCopy();
        Device.ConvertToFloat32(copy, CudaBuffer.View(buffer.Memory, offset, count * 4), count);
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
        Device.Download<int>(View(indices, name), host);
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

    /// <summary>
    /// Device memory behind a tensor, and the BF16 copy of one of its views while that is current. With
    /// <see cref="Fp32Pending"/> the copy is the only holder of that view's values (a BF16-only product output).
    /// </summary>
    private sealed class CudaTensorBuffer(CudaComputeBackend backend, CudaBuffer memory) : TensorBuffer(backend, memory.Bytes)
    {
        private long copyOffset;
        private long copyCount;
        private CudaBuffer? copy;

        public CudaBuffer Memory { get; } = memory;

        /// <summary>The FP32 memory of the copied view is not written yet; the BF16 copy holds its values.</summary>
        public bool Fp32Pending { get; private set; }

        /// <summary>The kept copy of the view at (byte offset, element count), or null.</summary>
        public CudaBuffer? Bf16Copy(long byteOffset, long count) =>
            copy is not null && copyOffset == byteOffset && copyCount == count ? copy : null;

        /// <summary>Whether a write of [byteOffset, byteOffset + bytes) covers the copied view entirely.</summary>
        public bool CopyWithin(long byteOffset, long bytes) =>
            copy is not null && byteOffset <= copyOffset && byteOffset + bytes >= copyOffset + (copyCount * 4);

        /// <summary>The pending view and its copy.</summary>
        public (long Offset, long Count, CudaBuffer Copy) PendingCopy() => (copyOffset, copyCount, copy!);

        public void Fp32Filled() => Fp32Pending = false;

        /// <summary>Keeps <paramref name="bf16"/> as the current copy of a view, replacing any other (never a pending one).</summary>
        public void KeepBf16Copy(long byteOffset, long count, CudaBuffer bf16, bool fp32Pending)
        {
            if (IsDisposed)
            {
                bf16.Dispose();
                return;
            }

            if (Fp32Pending)
            {
                throw new InvalidOperationException("A pending BF16-only output would be dropped before its FP32 values were filled.");
            }

            copy?.Dispose();
            (copyOffset, copyCount, copy) = (byteOffset, count, bf16);
            Fp32Pending = fp32Pending;
        }

        /// <summary>Some view of this buffer is being written (pending values already filled where needed): no copy is current.</summary>
        public void Written()
        {
            copy?.Dispose();
            copy = null;
            Fp32Pending = false;
        }

        protected override void Release()
        {
            Written();
            Memory.Dispose();
        }
    }
}

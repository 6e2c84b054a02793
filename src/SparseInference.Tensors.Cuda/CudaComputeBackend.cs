using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// <see cref="IComputeBackend"/> on a CUDA GPU. Tensors live in device memory from the device's pool;
/// FP32 ops run as NVRTC kernels, matrix products through cuBLAS (FP32 compute), attention through the
/// flash-style BF16 kernels (FP32 operands are converted on the device, accumulation is FP32).
/// Ops it lacks report <see cref="Supports"/> false so that callers fall back to the CPU backend.
/// How it computes is fixed at creation (<see cref="CudaBackendOptions"/>).
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
/// <para>
/// Recorded forwards (<see cref="IForwardRecorder"/>): a model records a repeated forward shape as a CUDA graph and
/// replays it as one launch (docs/cuda-notes.md, "CUDA graphs").
/// </para>
/// </summary>
public sealed partial class CudaComputeBackend : IComputeBackend, IForwardRecorder
{
    private readonly bool ownsDevice;
    private readonly DeviceAttentionCache attentionCache;
    private Recording? recording;

    /// <summary>A backend on an open device (several backends may share one device; one caller at a time).</summary>
    public CudaComputeBackend(CudaDevice gpu, CudaBackendOptions? options = null, bool ownsDevice = true)
    {
        ArgumentNullException.ThrowIfNull(gpu);
        options ??= CudaBackendOptions.Default;
        options.Validate();
        Gpu = gpu;
        Options = options;
        this.ownsDevice = ownsDevice;
        attentionCache = new DeviceAttentionCache(gpu);
    }

    /// <summary>
    /// Opens the GPU <paramref name="options"/> names; false with the reason (what is missing, what to install)
    /// where CUDA cannot be used.
    /// </summary>
    public static bool TryCreate(out CudaComputeBackend? backend, out string? reason, CudaBackendOptions? options = null)
    {
        options ??= CudaBackendOptions.Default;
        options.Validate();
        backend = null;
        if (!CudaDevice.TryCreate(out var device, out reason, options.Device))
        {
            return false;
        }

        backend = new CudaComputeBackend(device!, options);
        return true;
    }

    /// <summary>The settings this backend was created with.</summary>
    public CudaBackendOptions Options { get; }

    /// <summary>How F32 matrix products compute (<see cref="CudaBackendOptions.MatMulPrecision"/>).</summary>
    public CudaMatMulPrecision MatMulPrecision => Options.MatMulPrecision;

    /// <summary>GELU in cuBLASLt's epilogue (<see cref="CudaBackendOptions.GeluInEpilogue"/>).</summary>
    public bool GeluInEpilogue => Options.GeluInEpilogue;

    /// <summary>A BF16 residual stream with BF16 products (<see cref="CudaBackendOptions.BFloat16Residual"/>).</summary>
    public bool BFloat16Residual => Options.BFloat16Residual;

    /// <summary>
    /// The contract's residual dtype (<see cref="IComputeBackend.ResidualDType"/>): BF16 with
    /// <see cref="CudaMatMulPrecision.BFloat16"/> products and <see cref="BFloat16Residual"/>, otherwise F32.
    /// Read by a model when it allocates its activations.
    /// </summary>
    public DType ResidualDType => ResidualDTypeFor(MatMulPrecision, BFloat16Residual);

    /// <summary>The residual dtype a backend with these settings reports (BF16 only for BF16 outputs and a BF16 residual).</summary>
    public static DType ResidualDTypeFor(CudaMatMulPrecision precision, bool bfloat16Residual) =>
        precision == CudaMatMulPrecision.BFloat16 && bfloat16Residual ? DType.BF16 : DType.F32;

    /// <summary>The GPU: its stream, memory pool and kernels.</summary>
    public CudaDevice Gpu { get; }

    public string Name => $"cuda:{Gpu.Info.Ordinal}";

    DeviceKind IComputeBackend.Device => DeviceKind.Cuda;

    /// <summary>Device memory by use (weights, workspace, activations), for metrics.</summary>
    public DeviceMemoryStatistics MemoryStatistics => Gpu.Memory.Statistics;

    /// <inheritdoc/>
    public int MaxRecordedForwards => Options.MaxRecordedForwards;

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
        var buffer = new CudaTensorBuffer(this, Gpu.Allocate(bytes, category));
        if (zeroed)
        {
            Gpu.Zero(buffer.Memory);
        }

        return new Tensor(buffer, shape, dtype);
    }

    /// <summary>
    /// A weight stays on the device for the model's lifetime: from now on its memory counts as weights in
    /// <see cref="MemoryStatistics"/> (and in the server's device memory metrics). Its BF16 operand copy is made on first use;
    /// a Linear weight small enough for the fused layers gets their transposed copy now.
    /// </summary>
    public void PrepareWeight(Tensor weight, bool transposed)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Buffer is CudaTensorBuffer buffer)
        {
            Gpu.Memory.Recategorize(buffer.Memory, MemoryCategory.Weights);
            if (transposed && FusedLayerWeight(weight))
            {
                TransposedOf(weight, nameof(weight));
            }
        }
    }

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination)
    {
        var view = Output(destination, nameof(destination));
        if (source.Length != destination.SizeInBytes)
        {
            throw new ArgumentException($"source: expected {destination.SizeInBytes} bytes for {destination.Shape} {destination.DType}, got {source.Length}.", nameof(source));
        }

        Gpu.Upload(source, view);
    }

    public void CopyToHost(Tensor source, Span<byte> destination)
    {
        var view = View(source, nameof(source));
        if (destination.Length != source.SizeInBytes)
        {
            throw new ArgumentException($"destination: expected {source.SizeInBytes} bytes for {source.Shape} {source.DType}, got {destination.Length}.", nameof(destination));
        }

        Gpu.Download(view, destination);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        SameCount(source, destination, nameof(destination));
        if (source.DType != destination.DType)
        {
            throw new ArgumentException($"destination: expected {source.DType}, got {destination.DType}.", nameof(destination));
        }

        var from = View(source, nameof(source));
        Gpu.Copy(from, Output(destination, nameof(destination)), source.SizeInBytes);
    }

    public void Convert(Tensor source, Tensor destination)
    {
        SameCount(source, destination, nameof(destination));
        var s = View(source, nameof(source));
        var d = Output(destination, nameof(destination));
        switch (source.DType, destination.DType)
        {
            case (DType.F32, DType.BF16):
                Gpu.Elementwise.ConvertToBFloat16(s, d, source.ElementCount);
                break;
            case (DType.BF16, DType.F32):
                Gpu.Elementwise.ConvertToFloat32(s, d, source.ElementCount);
                break;
            case var (from, to) when from == to:
                Gpu.Copy(s, d, source.SizeInBytes);
                break;
            default:
                throw new NotSupportedException($"Backend '{Name}' converts F32 ↔ BF16 only, not {source.DType} → {destination.DType}.");
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

        Gpu.Elementwise.BiasAdd(View(x, nameof(x)), View(bias, nameof(bias)), Output(output, nameof(output)), x.ElementCount, cols);
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
            Gpu.Elementwise.Add(View(a, nameof(a)), View(b, nameof(b)), Output(output, nameof(output)), a.ElementCount);
            return;
        }

        // A BF16 residual stream (the positions added to the input projection): FP32 sum, rounded when stored in BF16.
        Gpu.Residual.AddMixed(View(a, nameof(a)), a.DType == DType.BF16, View(b, nameof(b)), b.DType == DType.BF16,
            Output(output, nameof(output)), output.DType == DType.BF16, a.ElementCount);
    }

    public void Scale(Tensor x, float alpha, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Gpu.Elementwise.Scale(View(x, nameof(x)), alpha, Output(output, nameof(output)), x.ElementCount);
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
                Gpu.Residual.LayerNormBFloat16Input(xv, g, bt, null, y, rows, cols, epsilon);
            }
            else
            {
                Gpu.Elementwise.LayerNorm(xv, g, bt, xv, rows, cols, epsilon, y, writeFloat32: false);
            }

            return;
        }

        // With BF16 products the normalised rows are a product's operand next: write their BF16 copy in this pass.
        // With BFloat16 products the rows are kept in BF16 only until an FP32 read (like a product's output).
        var y16 = MatMulPrecision != CudaMatMulPrecision.Float32 && output.ElementCount > 0
            ? Gpu.Allocate(output.ElementCount * 2, MemoryCategory.Workspace)
            : null;
        var bf16Only = y16 is not null && MatMulPrecision == CudaMatMulPrecision.BFloat16;
        if (x.DType == DType.BF16)
        {
            Gpu.Residual.LayerNormBFloat16Input(xv, g, bt, bf16Only ? null : y, y16, rows, cols, epsilon);
        }
        else
        {
            Gpu.Elementwise.LayerNorm(xv, g, bt, y, rows, cols, epsilon, y16, writeFloat32: !bf16Only);
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
        Gpu.Elementwise.BiasGelu(View(x, nameof(x)), null, Output(output, nameof(output)), x.ElementCount, Math.Max(1, x.Rank == 0 ? 1 : x.Dim(-1)));
    }

    public void Sigmoid(Tensor x, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Gpu.Elementwise.Sigmoid(View(x, nameof(x)), Output(output, nameof(output)), x.ElementCount);
    }

    public void Softmax(Tensor x, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Gpu.Elementwise.Softmax(View(x, nameof(x)), Output(output, nameof(output)), checked((int)x.Shape.LeadingCount), x.Dim(-1));
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
        Gpu.Indexing.GatherRows(View(table, nameof(table)), View(ids, nameof(ids)), Output(output, nameof(output)),
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
        Gpu.Indexing.GatherRows(View(source, nameof(source)), View(indices, nameof(indices)), Output(output, nameof(output)),
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
        Gpu.Indexing.ScatterAddRows(View(source, nameof(source)), View(indices, nameof(indices)), rowScale is null ? null : View(rowScale, nameof(rowScale)),
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
            Gpu.Indexing.TopK(View(x, nameof(x)), Output(values, nameof(values)), Output(indices, nameof(indices)), checked((int)x.Shape.LeadingCount), n, k);
        }
    }

    /// <summary>
    /// Drops the cached layouts and valid lengths (those a recorded forward still replays stay with it) and gives every
    /// unused pooled block back to the driver (after a model is unloaded, so that the driver's free memory shows it).
    /// </summary>
    public void ReleaseCachedMemory()
    {
        Gpu.Synchronize();
        attentionCache.Clear();
        Gpu.Memory.Trim();
    }

    public void Dispose()
    {
        attentionCache.Dispose();
        if (ownsDevice)
        {
            Gpu.Dispose();
        }
    }
}

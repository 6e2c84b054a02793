using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// <see cref="IComputeBackend"/> on a CUDA GPU. Tensors live in device memory from the backend's pool;
/// FP32 ops run as NVRTC kernels, matrix products through cuBLAS (FP32 compute), attention through the
/// flash-style BF16 kernel (FP32 operands are converted on the device, accumulation is FP32).
/// Ops it lacks report <see cref="Supports"/> false so that callers fall back to the CPU backend.
/// </summary>
public sealed class CudaComputeBackend : IComputeBackend
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

    /// <summary>The device, its kernels and memory pool.</summary>
    public CudaBackend Device { get; }

    public string Name => $"cuda:{Device.Device.Ordinal}";

    DeviceKind IComputeBackend.Device => DeviceKind.Cuda;

    /// <summary>Device memory by use (weights, workspace, activations), for metrics.</summary>
    public DeviceMemoryStatistics MemoryStatistics => Device.Memory.Statistics;

    public bool Supports(TensorOp op, DType dtype) => op switch
    {
        TensorOp.Copy or TensorOp.Embedding or TensorOp.Gather => true,
        TensorOp.ScatterAddRows or TensorOp.TopK => dtype == DType.F32,
        TensorOp.Convert => dtype is DType.F32 or DType.BF16,
        TensorOp.MatMul or TensorOp.BiasAdd or TensorOp.Add or TensorOp.Scale or TensorOp.LayerNorm
            or TensorOp.Gelu or TensorOp.Sigmoid or TensorOp.Softmax or TensorOp.Attention => dtype == DType.F32,
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

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination)
    {
        var view = View(destination, nameof(destination));
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

        Device.Copy(View(source, nameof(source)), View(destination, nameof(destination)), source.SizeInBytes);
    }

    public void Convert(Tensor source, Tensor destination)
    {
        SameCount(source, destination, nameof(destination));
        var s = View(source, nameof(source));
        var d = View(destination, nameof(destination));
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
        RequireF32(c, nameof(c));
        var g = MatMulGeometry.Resolve(a, b, c, options, bias);
        var cv = View(c, nameof(c));
        if (g.M > 0 && g.N > 0)
        {
            if (g.K == 0)
            {
                Device.Scale(cv, options.Beta, cv, c.ElementCount);
            }
            else if (MatMulPrecision == CudaMatMulPrecision.BFloat16Inputs)
            {
                // Operands rounded to BF16 on the device (a pass over each, memory-bound), product on the BF16
                // tensor cores with FP32 accumulation into the FP32 output. The stream orders the conversion,
                // the product and the buffers' reuse, so no synchronisation is needed.
                using var a16 = Bf16Copy(a);
                using var b16 = Bf16Copy(b);
                Device.Gemm(a16, b16, cv, g.M, g.N, g.K, options.TransposeA, options.TransposeB,
                    g.Batch, g.StrideA, g.StrideB, g.StrideC, options.Alpha, options.Beta, CudaElementType.BFloat16, CudaElementType.Float32);
            }
            else
            {
                Device.Gemm(View(a, nameof(a)), View(b, nameof(b)), cv, g.M, g.N, g.K, options.TransposeA, options.TransposeB,
                    g.Batch, g.StrideA, g.StrideB, g.StrideC, options.Alpha, options.Beta);
            }
        }

        var n = c.ElementCount;
        var biasView = bias is null ? null : View(bias, nameof(bias));
        if (bias is not null)
        {
            RequireF32(bias, nameof(bias));
        }

        if (options.Activation == Activation.Gelu)
        {
            Device.BiasGelu(cv, biasView, cv, n, g.N);
        }
        else if (biasView is not null)
        {
            Device.BiasAdd(cv, biasView, cv, n, g.N);
        }
    }

    private CudaBuffer Bf16Copy(Tensor t)
    {
        var buffer = Device.Allocate(Math.Max(2, t.ElementCount * 2), MemoryCategory.Workspace);
        Device.ConvertToBFloat16(View(t, nameof(t)), buffer, t.ElementCount);
        return buffer;
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

        Device.BiasAdd(View(x, nameof(x)), View(bias, nameof(bias)), View(output, nameof(output)), x.ElementCount, cols);
    }

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        RequireF32(a, nameof(a));
        SameShape(a, b, nameof(b));
        SameShape(a, output, nameof(output));
        Device.Add(View(a, nameof(a)), View(b, nameof(b)), View(output, nameof(output)), a.ElementCount);
    }

    public void Scale(Tensor x, float alpha, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Device.Scale(View(x, nameof(x)), alpha, View(output, nameof(output)), x.ElementCount);
    }

    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        var cols = x.Dim(-1);
        if (gamma.Rank != 1 || gamma.Dim(0) != cols)
        {
            throw new ArgumentException($"gamma: expected shape [{cols}], got {gamma.Shape}.", nameof(gamma));
        }

        if (beta.Rank != 1 || beta.Dim(0) != cols)
        {
            throw new ArgumentException($"beta: expected shape [{cols}], got {beta.Shape}.", nameof(beta));
        }

        Device.LayerNorm(View(x, nameof(x)), View(gamma, nameof(gamma)), View(beta, nameof(beta)), View(output, nameof(output)),
            checked((int)x.Shape.LeadingCount), cols, epsilon);
    }

    public void Gelu(Tensor x, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Device.BiasGelu(View(x, nameof(x)), null, View(output, nameof(output)), x.ElementCount, Math.Max(1, x.Rank == 0 ? 1 : x.Dim(-1)));
    }

    public void Sigmoid(Tensor x, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Device.Sigmoid(View(x, nameof(x)), View(output, nameof(output)), x.ElementCount);
    }

    public void Softmax(Tensor x, Tensor output)
    {
        RequireF32(x, nameof(x));
        SameShape(x, output, nameof(output));
        Device.Softmax(View(x, nameof(x)), View(output, nameof(output)), checked((int)x.Shape.LeadingCount), x.Dim(-1));
    }

    public void Embedding(Tensor table, Tensor ids, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(table);
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
        Device.GatherRows(View(table, nameof(table)), View(ids, nameof(ids)), View(output, nameof(output)),
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
        Device.GatherRows(View(source, nameof(source)), View(indices, nameof(indices)), View(output, nameof(output)),
            indices.ElementCount, source.Shape.ProductOf(1, source.Rank) * source.DType.SizeInBytes());
    }

    public void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null)
    {
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
            View(destination, nameof(destination)), source.Dim(0), source.Shape.ProductOf(1, source.Rank));
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
            Device.TopK(View(x, nameof(x)), View(values, nameof(values)), View(indices, nameof(indices)), checked((int)x.Shape.LeadingCount), n, k);
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

        var csr = layout is null ? null : ToCsr(layout);
        var geometry = Geometry(inputs, outOperand);
        if (!CudaBackend.SupportsAttention(geometry, csr, out var why))
        {
            throw new NotSupportedException($"Backend '{Name}' cannot run this attention call: {why}.");
        }

        // The kernel reads BF16: convert each distinct operand tensor once, keeping its element layout.
        var converted = new Dictionary<Tensor, CudaBuffer>(ReferenceEqualityComparer.Instance);
        try
        {
            CudaBuffer Bf16Of(Tensor t)
            {
                if (!converted.TryGetValue(t, out var buf))
                {
                    buf = Device.Allocate(Math.Max(2, t.ElementCount * 2), MemoryCategory.Workspace);
                    converted[t] = buf;
                    Device.ConvertToBFloat16(View(t, "inputs"), buf, t.ElementCount);
                }

                return buf;
            }

            CudaBuffer At(AttentionOperand op) => CudaBuffer.View(Bf16Of(op.Tensor), op.Offset * 2, (op.Tensor.ElementCount - op.Offset) * 2);

            var q = At(inputs.Query);
            var k = At(inputs.Key);
            var v = At(inputs.Value);
            using var outBf16 = Device.Allocate(Math.Max(2, output.ElementCount * 2), MemoryCategory.Workspace);
            using var lens = validLengths.IsEmpty ? null : Device.Allocate(validLengths.Length * 4L, MemoryCategory.Workspace);
            if (lens is not null)
            {
                Device.Upload(validLengths, lens);
            }

            using var deviceLayout = csr is null ? null : Device.Upload(csr);
            Device.Attention(q, k, v, outBf16, geometry, deviceLayout, lens);
            Device.ConvertToFloat32(outBf16, View(output, nameof(output)), output.ElementCount);
            Device.Synchronize();
        }
        finally
        {
            foreach (var buf in converted.Values)
            {
                buf.Dispose();
            }
        }

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

    /// <summary>The contract's layout as the kernel's CSR (one row per head, or one shared row).</summary>
    internal static CsrBlockLayout ToCsr(BlockLayout layout) =>
        new(Math.Max(1, layout.Batch), layout.SharedAcrossHeads ? 1 : layout.Heads, Math.Max(1, layout.QueryBlocks), Math.Max(1, layout.QueryBlocks),
            layout.BlockSize, layout.RowOffsets.ToArray(), layout.KeyBlockIndices.ToArray());

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

    public void Dispose()
    {
        if (ownsDevice)
        {
            Device.Dispose();
        }
    }

    private CudaBuffer View(Tensor t, string name)
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

    /// <summary>Device memory behind a tensor.</summary>
    private sealed class CudaTensorBuffer(CudaComputeBackend backend, CudaBuffer memory) : TensorBuffer(backend, memory.Bytes)
    {
        public CudaBuffer Memory { get; } = memory;

        protected override void Release() => Memory.Dispose();
    }
}

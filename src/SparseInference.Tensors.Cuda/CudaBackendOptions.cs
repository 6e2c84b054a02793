using System.Globalization;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// How a <see cref="CudaComputeBackend"/> computes, fixed when it is created (defaults here, checked at creation).
/// </summary>
public sealed record CudaBackendOptions
{
    /// <summary>Variable that sets <see cref="MaxRecordedForwards"/>'s default (an integer; 0 turns recording off).</summary>
    public const string RecordedForwardsVariable = "SPARSEINFERENCE_CUDA_GRAPHS";

    /// <summary>Most recordings a model may keep when the variable is not set.</summary>
    public const int DefaultRecordedForwards = 8;

    /// <summary>The largest <see cref="MaxRecordedForwards"/> accepted.</summary>
    public const int MaxRecordedForwardsLimit = 64;

    /// <summary>The defaults (FP32 products, the contract's reference precision).</summary>
    public static CudaBackendOptions Default { get; } = new();

    /// <summary>Which GPU to open, where <see cref="CudaComputeBackend.TryCreate"/> opens one.</summary>
    public CudaDeviceOptions Device { get; init; } = CudaDeviceOptions.Default;

    /// <summary>
    /// How F32 matrix products compute: <see cref="CudaMatMulPrecision.Float32"/> (exact FP32 cuBLAS, the default and the
    /// contract's reference precision), <see cref="CudaMatMulPrecision.BFloat16Inputs"/> (operands rounded to BF16, tensor
    /// cores, FP32 accumulation) or <see cref="CudaMatMulPrecision.BFloat16"/> (as a BF16 model: the serving setting).
    /// </summary>
    public CudaMatMulPrecision MatMulPrecision { get; init; } = CudaMatMulPrecision.Float32;

    /// <summary>
    /// With <see cref="CudaMatMulPrecision.BFloat16"/> (and for products into a BF16 tensor): GELU computed by cuBLASLt in
    /// the product's epilogue instead of a separate exact erf pass over the BF16 output. cuBLASLt documents no formula for
    /// its GELU, but over pre-activations in [−6, 6] it is 2.8e-3 (relative) from the exact FP32 GELU, against 3.2e-3 for
    /// the exact pass on BF16 inputs (the self-test measures both on every run), inside the BF16 tolerance of
    /// docs/model-format.md ("Precision"). False selects the exact pass.
    /// </summary>
    public bool GeluInEpilogue { get; init; } = true;

    /// <summary>
    /// With <see cref="CudaMatMulPrecision.BFloat16"/>: the model's residual stream is stored in BF16
    /// (<see cref="CudaComputeBackend.ResidualDType"/> = BF16), so the accumulating products read and write it in BF16 and
    /// LayerNorm reads BF16 rows. False keeps the residual stream in FP32 (the earlier path, for comparison).
    /// </summary>
    public bool BFloat16Residual { get; init; } = true;

    /// <summary>
    /// Recorded forwards (CUDA graphs) one model keeps: a repeated forward shape is recorded on its second call and
    /// replayed as one launch from then on (<see cref="IForwardRecorder"/>). 0 turns recording off. Default:
    /// <see cref="RecordedForwardsVariable"/> if set, else <see cref="DefaultRecordedForwards"/>.
    /// </summary>
    public int MaxRecordedForwards { get; init; } = RecordedForwardsFromEnvironment();

    /// <summary>
    /// A small model's encoder layer as two launches (fused_layer.cu: LayerNorm with the q/k/v product, then attention with
    /// every row-wise op after it) instead of seven, where the layer fits (d_model ≤ 128 in heads of ≤ 32, d_ff ≤ 512,
    /// sequences up to <see cref="CudaComputeBackend.FusedLayerMaxSeqLen"/>): arithmetic in FP32 from the FP32 weights.
    /// Off by default: the first version measured slower than the op-by-op layer replayed as a graph (run 25, 166 against
    /// 76 µs for a lone window), and the second (weights read transposed) has not run on a device yet
    /// (docs/cuda-notes.md, "A lone window").
    /// </summary>
    public bool FusedLayers { get; init; }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Device, nameof(Device));
        Device.Validate();
        if (!Enum.IsDefined(MatMulPrecision))
        {
            throw new ArgumentOutOfRangeException(nameof(MatMulPrecision), MatMulPrecision, "MatMulPrecision: expected Float32, BFloat16Inputs or BFloat16.");
        }

        if (MaxRecordedForwards is < 0 or > MaxRecordedForwardsLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRecordedForwards), MaxRecordedForwards,
                $"MaxRecordedForwards (default from {RecordedForwardsVariable}): expected 0 … {MaxRecordedForwardsLimit} (0 turns recording off), got {(MaxRecordedForwards == int.MinValue ? $"'{Environment.GetEnvironmentVariable(RecordedForwardsVariable)}'" : MaxRecordedForwards)}.");
        }
    }

    private static int RecordedForwardsFromEnvironment()
    {
        var text = Environment.GetEnvironmentVariable(RecordedForwardsVariable);
        if (string.IsNullOrWhiteSpace(text))
        {
            return DefaultRecordedForwards;
        }

        // Not a number: int.MinValue, which Validate reports with the variable's text when a backend is created.
        return int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : int.MinValue;
    }
}

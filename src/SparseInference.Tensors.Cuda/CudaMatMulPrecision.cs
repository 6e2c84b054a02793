namespace SparseInference.Tensors.Cuda;

/// <summary>How <see cref="CudaComputeBackend"/> runs F32 matrix products.</summary>
public enum CudaMatMulPrecision
{
    /// <summary>FP32 operands and compute (cuBLAS SGEMM path).</summary>
    Float32,

    /// <summary>Operands rounded to BF16 on the device, BF16 tensor cores, FP32 accumulation and output.</summary>
    BFloat16Inputs,

    /// <summary>
    /// As <see cref="BFloat16Inputs"/>, and a product that does not accumulate (beta = 0, one matrix) keeps its output
    /// in BF16 only: the bias is added in FP32 in the product's epilogue, GELU follows (in the epilogue by default,
    /// <see cref="CudaComputeBackend.GeluInEpilogue"/>), and the FP32 tensor is filled from the BF16 values when an op
    /// reads it as FP32. Such outputs are rounded to BF16, as a BF16 model's are. The residual stream is BF16 too
    /// (<see cref="CudaComputeBackend.ResidualDType"/>, unless <see cref="CudaComputeBackend.BFloat16Residual"/> is
    /// off): the accumulating products read and write it in BF16. Halves the activation traffic of every product.
    /// </summary>
    BFloat16,
}

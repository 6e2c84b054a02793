namespace SparseInference.Tensors.Cuda;

/// <summary>How <see cref="CudaComputeBackend"/> runs F32 matrix products.</summary>
public enum CudaMatMulPrecision
{
    /// <summary>FP32 operands and compute (cuBLAS SGEMM path).</summary>
    Float32,

    /// <summary>Operands rounded to BF16 on the device, BF16 tensor cores, FP32 accumulation and output.</summary>
    BFloat16Inputs,
}

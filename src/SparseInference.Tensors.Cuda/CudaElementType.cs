namespace SparseInference.Tensors.Cuda;

/// <summary>Element types the CUDA kernels read and write.</summary>
public enum CudaElementType
{
    Float32,
    BFloat16,
    Float16,
}

/// <summary>Sizes of <see cref="CudaElementType"/>.</summary>
public static class CudaElementTypeExtensions
{
    public static int Size(this CudaElementType type) => type == CudaElementType.Float32 ? 4 : 2;
}

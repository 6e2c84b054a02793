using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Kernels;

/// <summary>The kernels of indexing.cu: row gather (any 16-bit multiple), scatter-add of FP32 rows, per-row top-k.</summary>
public sealed unsafe class IndexingKernels
{
    private readonly CudaDevice device;

    internal IndexingKernels(CudaDevice device) => this.device = device;

    /// <summary>out[i] = src[idx[i]] for rows of <paramref name="rowBytes"/> bytes (a multiple of 2); indices already range-checked.</summary>
    public void GatherRows(CudaBuffer source, CudaBuffer indices, CudaBuffer output, long numRows, long rowBytes)
    {
        if (rowBytes % 2 != 0)
        {
            throw new ArgumentException($"rowBytes: expected a multiple of 2, got {rowBytes}.", nameof(rowBytes));
        }

        CudaDevice.CheckRange(indices, 0, numRows * 4, nameof(indices));
        CudaDevice.CheckRange(output, 0, numRows * rowBytes, nameof(output));
        device.MakeCurrent();
        var f = device.Function("indexing.cu", "gather_rows_u16");
        ulong ps = source.Pointer, pi = indices.Pointer, po = output.Pointer;
        var words = rowBytes / 2;
        void** args = stackalloc void*[] { &ps, &pi, &po, &numRows, &words };
        device.Launch(f, device.GridFor(numRows * words, 256), 1, 1, 256, 0, args, "gather_rows_u16");
    }

    /// <summary>dst[idx[i]] += scale[i]·src[i] over FP32 rows; indices distinct and range-checked.</summary>
    public void ScatterAddRows(CudaBuffer source, CudaBuffer indices, CudaBuffer? scale, CudaBuffer destination, long numRows, long rowElements)
    {
        CudaDevice.CheckRange(source, 0, numRows * rowElements * 4, nameof(source));
        CudaDevice.CheckRange(indices, 0, numRows * 4, nameof(indices));
        device.MakeCurrent();
        var f = device.Function("indexing.cu", "scatter_add_rows_f32");
        ulong ps = source.Pointer, pi = indices.Pointer, pscale = scale?.Pointer ?? 0, pd = destination.Pointer;
        void** args = stackalloc void*[] { &ps, &pi, &pscale, &pd, &numRows, &rowElements };
        device.Launch(f, device.GridFor(numRows * rowElements, 256), 1, 1, 256, 0, args, "scatter_add_rows_f32");
    }

    /// <summary>Per row of <paramref name="n"/> FP32 values: the k largest (descending, ties → lower index) and their indices.</summary>
    public void TopK(CudaBuffer x, CudaBuffer values, CudaBuffer indices, int rows, int n, int k)
    {
        CudaDevice.CheckRange(x, 0, (long)rows * n * 4, nameof(x));
        CudaDevice.CheckRange(values, 0, (long)rows * k * 4, nameof(values));
        CudaDevice.CheckRange(indices, 0, (long)rows * k * 4, nameof(indices));
        device.MakeCurrent();
        var f = device.Function("indexing.cu", "topk_rows_f32");
        ulong px = x.Pointer, pv = values.Pointer, pi = indices.Pointer;
        void** args = stackalloc void*[] { &px, &pv, &pi, &rows, &n, &k };
        const int warps = 8;
        device.Launch(f, (uint)((rows + warps - 1) / warps), 1, 1, warps * 32, 0, args, "topk_rows_f32");
    }
}

using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Attention;

/// <summary>A CSR layout uploaded to the device.</summary>
public sealed class DeviceBlockLayout : IDisposable
{
    internal DeviceBlockLayout(CsrBlockLayout layout, CudaBuffer offsets, CudaBuffer indices)
    {
        Layout = layout;
        Offsets = offsets;
        Indices = indices;
    }

    public CsrBlockLayout Layout { get; }

    internal CudaBuffer Offsets { get; }

    internal CudaBuffer Indices { get; }

    /// <summary>Split plans by head count (a layout shared across heads serves any count).</summary>
    internal Dictionary<int, SplitPlan?> Plans { get; } = [];

    public void Dispose()
    {
        Offsets.Dispose();
        Indices.Dispose();
        foreach (var plan in Plans.Values)
        {
            plan?.Dispose();
        }
    }
}

/// <summary>
/// How the rows of a layout are spread over CTAs when some rows are much longer than the mean:
/// a work list of (row, list start, list end, partial slot) and the split rows to combine.
/// </summary>
internal sealed class SplitPlan(CudaBuffer work, int workItems, CudaBuffer combine, int splitRows, int slots) : IDisposable
{
    public CudaBuffer Work { get; } = work;

    public int WorkItems { get; } = workItems;

    public CudaBuffer Combine { get; } = combine;

    public int SplitRows { get; } = splitRows;

    public int Slots { get; } = slots;

    public void Dispose()
    {
        Work.Dispose();
        Combine.Dispose();
    }
}

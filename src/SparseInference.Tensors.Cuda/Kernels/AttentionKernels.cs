using System.Runtime.InteropServices;
using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Kernels;

/// <summary>
/// Flash-style attention: O = softmax(Q·Kᵀ/√d)·V per (batch, head) on BF16 or FP16 tensors, FP32 accumulation, dense or
/// over the key blocks a CSR layout lists. Three kernels: attention_sm90.cu (wgmma, compute capability 9.0), attention.cu
/// (mma.sync, 8.0 and newer) and attention_small.cu (small head dims and blocks, one thread per query row);
/// <see cref="AttentionKernel"/> picks between the first two, the call's shape decides the third. Layouts are uploaded
/// once (<see cref="Upload"/>) and carry their work plans (<see cref="AttentionWorkPlanner"/>).
/// </summary>
public sealed unsafe partial class AttentionKernels
{
    /// <summary>Key tile of the mma.sync kernel on dense calls (and its longest on block-sparse ones).</summary>
    private const int DenseTile = 64;

    private readonly CudaDevice device;

    internal AttentionKernels(CudaDevice device) => this.device = device;

    /// <summary>What <see cref="AttentionKernel.Auto"/> runs on this device.</summary>
    public AttentionKernel Default => device.Info.HasWgmma ? AttentionKernel.Wgmma : AttentionKernel.MmaSync;

    /// <summary>
    /// Whether the Hopper (wgmma) kernel runs this call on <paramref name="device"/>: compute capability 9.0, head dim 64,
    /// BF16 or FP16, and dense or a block size of 128 (one query block = one CTA of two 64-row warpgroups).
    /// </summary>
    public static bool SupportsWgmma(CudaDeviceInfo device, AttentionGeometry geometry, CsrBlockLayout? layout, CudaElementType type, out string? why)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(geometry);
        why = !device.HasWgmma ? $"compute capability {device.ComputeMajor}.{device.ComputeMinor} (wgmma needs 9.0)"
            : geometry.HeadDim != 64 ? $"head dim {geometry.HeadDim} (supported: 64)"
            : layout is not null && layout.BlockSize != 128 ? $"block size {layout.BlockSize} (supported: 128, or dense)"
            : type == CudaElementType.Float32 ? "FP32 tensors (BF16 or FP16 only)"
            : null;
        return why is null;
    }

    /// <summary>
    /// Whether <see cref="Run"/> takes this geometry and layout: on the tensor-core kernels (head dim 16/32/64/128, block
    /// size 16/32/64/128, 16-byte rows) or else on the small-head kernel (head dim up to 64, block size up to 256).
    /// </summary>
    public static bool Supports(AttentionGeometry geometry, CsrBlockLayout? layout, out string? why)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        why = null;
        if (layout is not null && (layout.Batch != geometry.Batch || (layout.Heads != geometry.Heads && layout.Heads != 1)
            || layout.NumQueryBlocks != CsrBlockLayout.BlockCount(geometry.SeqLen, layout.BlockSize)))
        {
            why = $"layout [{layout.Batch}, {layout.Heads}, {layout.NumQueryBlocks} query blocks] does not match batch {geometry.Batch}, heads {geometry.Heads}, {CsrBlockLayout.BlockCount(geometry.SeqLen, layout.BlockSize)} query blocks";
        }
        else if (!TensorCoreKernelTakes(geometry, layout, out var tensorCoreWhy) && !SmallHeadKernelTakes(geometry, layout, out var smallWhy))
        {
            why = $"{tensorCoreWhy} for the tensor-core kernel, and {smallWhy} for the small-head kernel";
        }

        return why is null;
    }

    /// <summary>Whether the tensor-core kernels (attention.cu, attention_sm90.cu) take this call.</summary>
    internal static bool TensorCoreKernelTakes(AttentionGeometry geometry, CsrBlockLayout? layout, out string? why)
    {
        why = null;
        if (geometry.HeadDim is not (16 or 32 or 64 or 128))
        {
            why = $"head dim {geometry.HeadDim} (supported: 16, 32, 64, 128)";
        }
        else if (layout is not null && layout.BlockSize is not (16 or 32 or 64 or 128))
        {
            why = $"block size {layout.BlockSize} (supported: 16, 32, 64, 128)";
        }
        else if (new[] { geometry.Q, geometry.K, geometry.V, geometry.O }.Any(s => s.Token % 8 != 0 || s.Head % 8 != 0 || s.Batch % 8 != 0))
        {
            why = "strides must be multiples of 8 elements (16-byte rows)";
        }

        return why is null;
    }

    /// <summary>Uploads a layout (workspace memory) for <see cref="Run"/>.</summary>
    public DeviceBlockLayout Upload(CsrBlockLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var offsets = device.Allocate(layout.Offsets.Length * 4L, MemoryCategory.Workspace);
        var indices = device.Allocate(Math.Max(1, layout.Indices.Length) * 4L, MemoryCategory.Workspace);
        device.Upload<int>(layout.Offsets, offsets);
        if (layout.Indices.Length > 0)
        {
            device.Upload<int>(layout.Indices, indices);
        }

        return new DeviceBlockLayout(layout, offsets, indices);
    }

    /// <summary>The layout's work plan for <paramref name="heads"/> heads, uploaded on first use and kept with the layout.</summary>
    private SplitPlan? PlanFor(DeviceBlockLayout layout, int heads)
    {
        if (layout.Plans.TryGetValue(heads, out var cached))
        {
            return cached;
        }

        SplitPlan? plan = null;
        if (AttentionWorkPlanner.PlanWork(layout.Layout, heads) is { } p)
        {
            var work = device.Allocate(p.Work.Length * 4L, MemoryCategory.Workspace);
            var combine = device.Allocate(Math.Max(1, p.Combine.Length) * 4L, MemoryCategory.Workspace);
            device.Upload<int>(p.Work, work);
            device.Upload<int>(p.Combine, combine);
            plan = new SplitPlan(work, p.Work.Length / 4, combine, p.Combine.Length / 3, p.Slots);
        }

        layout.Plans[heads] = plan;
        return plan;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct AttentionParams
    {
        public ulong Q, K, V, O;
        public long QStrideB, QStrideH, QStrideT;
        public long KStrideB, KStrideH, KStrideT;
        public long VStrideB, VStrideH, VStrideT;
        public long OStrideB, OStrideH, OStrideT;
        public ulong SeqLens, BlockOffsets, BlockIndices;
        public ulong Work, PartialO, PartialML;
        public int Batch, Heads, SeqLen, LayoutHeads, BlockSize, NumQueryBlocks;
        public float ScaleLog2;
    }

    /// <summary>The kernels' parameters for one call; a dense call counts <paramref name="queryTile"/>-row query blocks.</summary>
    private static AttentionParams ParamsFor(CudaBuffer q, CudaBuffer k, CudaBuffer v, CudaBuffer o, AttentionGeometry geometry,
        DeviceBlockLayout? layout, CudaBuffer? seqLens, int denseBlock, int queryTile) => new()
    {
        Q = q.Pointer, K = k.Pointer, V = v.Pointer, O = o.Pointer,
        QStrideB = geometry.Q.Batch, QStrideH = geometry.Q.Head, QStrideT = geometry.Q.Token,
        KStrideB = geometry.K.Batch, KStrideH = geometry.K.Head, KStrideT = geometry.K.Token,
        VStrideB = geometry.V.Batch, VStrideH = geometry.V.Head, VStrideT = geometry.V.Token,
        OStrideB = geometry.O.Batch, OStrideH = geometry.O.Head, OStrideT = geometry.O.Token,
        SeqLens = seqLens?.Pointer ?? 0,
        BlockOffsets = layout?.Offsets.Pointer ?? 0,
        BlockIndices = layout?.Indices.Pointer ?? 0,
        Batch = geometry.Batch,
        Heads = geometry.Heads,
        SeqLen = geometry.SeqLen,
        LayoutHeads = layout?.Layout.Heads ?? geometry.Heads,
        BlockSize = layout?.Layout.BlockSize ?? denseBlock,
        NumQueryBlocks = layout?.Layout.NumQueryBlocks ?? CsrBlockLayout.BlockCount(geometry.SeqLen, queryTile),
        ScaleLog2 = (float)(1.0 / Math.Sqrt(geometry.HeadDim) * 1.4426950408889634),
    };

    /// <summary>
    /// O = softmax(Q·Kᵀ/√d)·V per (batch, head) on BF16 or FP16 tensors, FP32 accumulation. Dense when
    /// <paramref name="layout"/> is null, else only the listed key blocks per query block. <paramref name="seqLens"/>
    /// (int32 per sequence, optional) masks keys past each valid length and zeroes the outputs of queries past it.
    /// Queued; nothing waits for the device (a layout's work plan is uploaded on its first call).
    /// </summary>
    public void Run(CudaBuffer q, CudaBuffer k, CudaBuffer v, CudaBuffer o, AttentionGeometry geometry,
        DeviceBlockLayout? layout = null, CudaBuffer? seqLens = null, CudaElementType type = CudaElementType.BFloat16,
        AttentionKernel kernel = AttentionKernel.Auto)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        if (!Supports(geometry, layout?.Layout, out var why))
        {
            throw new NotSupportedException("CUDA attention does not support this call: " + why);
        }

        if (type == CudaElementType.Float32)
        {
            throw new NotSupportedException("CUDA attention takes BF16 or FP16 tensors; convert FP32 first.");
        }

        if (!TensorCoreKernelTakes(geometry, layout?.Layout, out _))
        {
            SmallHead(q, k, v, o, geometry, layout, seqLens, type);
            return;
        }

        var queryTile = layout?.Layout.BlockSize ?? 128;
        var mmaDefines = MmaSyncDefines(geometry.HeadDim, queryTile, type);
        device.MakeCurrent();
        nint f;
        uint threads;
        int sharedBytes;
        if ((kernel == AttentionKernel.Auto ? Default : kernel) == AttentionKernel.Wgmma && SupportsWgmma(device.Info, geometry, layout?.Layout, type, out _))
        {
            (f, threads, sharedBytes, queryTile) = WgmmaFunction(dense: layout is null, type);
        }
        else
        {
            sharedBytes = MmaSyncSharedBytes(geometry.HeadDim, queryTile);
            f = device.FunctionWithSharedMemory("attention.cu", "attention_fwd", sharedBytes, mmaDefines);
            threads = MmaSyncThreads(geometry.HeadDim, queryTile);
        }

        var p = ParamsFor(q, k, v, o, geometry, layout, seqLens, denseBlock: DenseTile, queryTile);
        void** args = stackalloc void*[] { &p };
        var plan = layout is null ? null : PlanFor(layout, geometry.Heads);
        if (plan is null)
        {
            device.Launch(f, (uint)CsrBlockLayout.BlockCount(geometry.SeqLen, queryTile), (uint)geometry.Heads, (uint)geometry.Batch,
                threads, (uint)sharedBytes, args, "attention_fwd");
            return;
        }

        // Both kernels write split rows' partial results in the same layout ([slot][query tile][head dim]), so
        // attention.cu's combine kernel merges either.
        p.Work = plan.Work.Pointer;
        if (plan.Slots == 0)
        {
            device.Launch(f, (uint)plan.WorkItems, 1, 1, threads, (uint)sharedBytes, args, "attention_fwd");
            return;
        }

        using var partialO = device.Allocate((long)plan.Slots * queryTile * geometry.HeadDim * 4, MemoryCategory.Workspace);
        using var partialML = device.Allocate((long)plan.Slots * queryTile * 2 * 4, MemoryCategory.Workspace);
        p.PartialO = partialO.Pointer;
        p.PartialML = partialML.Pointer;
        device.Launch(f, (uint)plan.WorkItems, 1, 1, threads, (uint)sharedBytes, args, "attention_fwd");
        var combine = device.Function("attention.cu", "attention_combine", mmaDefines);
        ulong rows = plan.Combine.Pointer;
        void** combineArgs = stackalloc void*[] { &p, &rows };
        device.Launch(combine, (uint)plan.SplitRows, 1, 1, 256, 0, combineArgs, "attention_combine");
    }

    /// <summary>Registers and local-memory bytes per thread of the kernel a call of this head dim and query tile runs.</summary>
    public (int Registers, int LocalBytes) Resources(int headDim, int queryTile, AttentionKernel kernel = AttentionKernel.Auto)
    {
        if ((kernel == AttentionKernel.Auto ? Default : kernel) == AttentionKernel.Wgmma && device.Info.HasWgmma && headDim == 64 && queryTile == 128)
        {
            return device.KernelResources("attention_sm90.cu", "attention_fwd_sm90", WgmmaDefines(dense: false, CudaElementType.BFloat16));
        }

        return device.KernelResources("attention.cu", "attention_fwd", MmaSyncDefines(headDim, queryTile, CudaElementType.BFloat16));
    }

    /// <summary>
    /// Defines of the mma.sync kernel: 64-key tiles (the block size where smaller), two 16-row tiles per warp except at head
    /// dim 128 (which would spill) and for 16-row blocks (which have one).
    /// </summary>
    private static string[] MmaSyncDefines(int headDim, int queryTile, CudaElementType type) =>
    [
        $"HEAD_DIM={headDim}", $"QUERY_TILE={queryTile}", $"KEY_TILE={Math.Min(DenseTile, queryTile)}",
        $"USE_FP16={(type == CudaElementType.Float16 ? 1 : 0)}", $"M_TILES={MmaSyncRowTiles(headDim, queryTile)}",
    ];

    private static int MmaSyncRowTiles(int headDim, int queryTile) => headDim == 128 || queryTile < 32 ? 1 : 2;

    private static uint MmaSyncThreads(int headDim, int queryTile) => (uint)(queryTile / (16 * MmaSyncRowTiles(headDim, queryTile)) * 32);

    /// <summary>The Q tile and two K/V buffers of 16-bit values.</summary>
    private static int MmaSyncSharedBytes(int headDim, int queryTile) =>
        ((queryTile * headDim) + (2 * 2 * Math.Min(DenseTile, queryTile) * headDim)) * 2;

    /// <summary>
    /// Defines of the Hopper kernel: block-sparse calls take the two-CTA build (128-query tiles, two stages), dense calls the
    /// warp-specialised one (a producer and three consumer warpgroups, 192-query tiles, four stages).
    /// </summary>
    private static string[] WgmmaDefines(bool dense, CudaElementType type) => dense
        ? ["HEAD_DIM=64", "QUERY_TILE=192", "STAGES=4", "MIN_BLOCKS=1", "PRODUCER=1", $"USE_FP16={(type == CudaElementType.Float16 ? 1 : 0)}"]
        : ["HEAD_DIM=64", "QUERY_TILE=128", "STAGES=2", "MIN_BLOCKS=2", "PRODUCER=0", $"USE_FP16={(type == CudaElementType.Float16 ? 1 : 0)}"];

    private (nint Function, uint Threads, int SharedBytes, int QueryTile) WgmmaFunction(bool dense, CudaElementType type)
    {
        // Q tile and K/V ring of 128-byte rows, 1 KiB for the kernel to align the window to the 1024-byte swizzle atom, and
        // for the warp-specialised build the ring's mbarriers.
        var (queryTile, stages, threads, barriers) = dense ? (192, 4, 512u, 256) : (128, 2, 256u, 0);
        var sharedBytes = (queryTile * 128) + (stages * 2 * 128 * 128) + barriers + 1024;
        return (device.FunctionWithSharedMemory("attention_sm90.cu", "attention_fwd_sm90", sharedBytes, WgmmaDefines(dense, type)), threads, sharedBytes, queryTile);
    }
}

using System.Runtime.InteropServices;
using System.Text;
using SparseInference.Tensors.Cuda.Compilation;
using SparseInference.Tensors.Cuda.Interop;
using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// One GPU: its primary context, one stream on which all work is queued, a caching device-memory pool, host copies
/// through page-locked staging, the NVRTC-compiled kernel modules, launches, event timing and stream capture. The kernels
/// themselves are grouped as their sources are (<c>Kernels/*.cu</c>): <see cref="Elementwise"/>, <see cref="Residual"/>,
/// <see cref="Indexing"/>, <see cref="Gemm"/> (cuBLAS, cuBLASLt and the small-K product), <see cref="Attention"/>,
/// <see cref="Selection"/> and <see cref="FusedLayers"/>. Open it with <see cref="TryCreate"/>, which reports why CUDA is unavailable instead of throwing.
/// One caller at a time: the stream orders the work, and callers serialise their use of it.
/// </summary>
public sealed unsafe class CudaDevice : IDisposable
{
    private readonly CudaPrimaryContextHandle context;
    private readonly CudaStreamHandle stream;
    private readonly KernelCompiler compiler;
    private readonly Dictionary<string, CudaModuleHandle> modules = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Module, string Function), nint> functions = [];
    private readonly Lock gate = new();

    private CudaDevice(CudaDeviceInfo info, CudaPrimaryContextHandle context, CudaStreamHandle stream, KernelCompiler compiler)
    {
        this.context = context;
        this.stream = stream;
        this.compiler = compiler;
        Memory = new DeviceMemoryPool(context.DangerousGetHandle());
        Elementwise = new ElementwiseKernels(this);
        Residual = new ResidualKernels(this);
        Indexing = new IndexingKernels(this);
        Gemm = new GemmKernels(this);
        Attention = new AttentionKernels(this);
        Selection = new BlockSelectionKernels(this);
        FusedLayers = new FusedLayerKernels(this);
        Info = info with { NvrtcVersion = $"{compiler.NvrtcMajor}.{compiler.NvrtcMinor}", CublasVersion = Gemm.CublasVersion };
    }

    /// <summary>What the device and its libraries report.</summary>
    public CudaDeviceInfo Info { get; }

    /// <summary>The caching allocator behind every buffer of this device.</summary>
    public DeviceMemoryPool Memory { get; }

    /// <summary>elementwise.cu: LayerNorm, GELU, bias, add, scale, sigmoid, softmax, BF16 conversions.</summary>
    public ElementwiseKernels Elementwise { get; }

    /// <summary>residual.cu: the ops of a BF16 residual stream.</summary>
    public ResidualKernels Residual { get; }

    /// <summary>indexing.cu: row gather, scatter-add, top-k.</summary>
    public IndexingKernels Indexing { get; }

    /// <summary>Matrix products: cuBLAS, cuBLASLt plans, and small_k.cu.</summary>
    public GemmKernels Gemm { get; }

    /// <summary>attention.cu, attention_sm90.cu and attention_small.cu, with the work planner.</summary>
    public AttentionKernels Attention { get; }

    /// <summary>selection.cu: block-topk selection.</summary>
    public BlockSelectionKernels Selection { get; }

    /// <summary>fused_layer.cu: a small model's encoder layer in two launches.</summary>
    public FusedLayerKernels FusedLayers { get; }

    /// <summary>Kernel compilations not served from the disk cache.</summary>
    public int KernelCompilations => compiler.Compilations;

    internal nint Stream => stream.DangerousGetHandle();

    internal nint ContextHandle => context.DangerousGetHandle();

    /// <summary>
    /// Opens the GPU <paramref name="options"/> names. Returns false with a reason (what is missing and what to install, or
    /// the failing call) when CUDA cannot be used here; never throws for that.
    /// </summary>
    public static bool TryCreate(out CudaDevice? device, out string? reason, CudaDeviceOptions? options = null)
    {
        options ??= CudaDeviceOptions.Default;
        options.Validate();
        device = null;
        reason = CudaLibraryResolver.Probe();
        if (reason is not null)
        {
            return false;
        }

        CudaPrimaryContextHandle? ctx = null;
        CudaStreamHandle? str = null;
        try
        {
            CudaDriver.Check(CudaDriver.cuInit(0), nameof(CudaDriver.cuInit));
            CudaDriver.Check(CudaDriver.cuDeviceGetCount(out var count), nameof(CudaDriver.cuDeviceGetCount));
            if (options.Ordinal >= count)
            {
                reason = $"CUDA backend unavailable: device ordinal {options.Ordinal} requested, {count} device(s) present.";
                return false;
            }

            CudaDriver.Check(CudaDriver.cuDeviceGet(out var handle, options.Ordinal), nameof(CudaDriver.cuDeviceGet));
            var info = QueryDevice(handle, options.Ordinal);
            if (info.ComputeMajor < 8)
            {
                reason = $"CUDA backend unavailable: {info.Name} has compute capability {info.ComputeMajor}.{info.ComputeMinor}; the kernels need 8.0 or newer (BF16 tensor cores).";
                return false;
            }

            CudaDriver.Check(CudaDriver.cuDevicePrimaryCtxRetain(out var ctxPtr, handle), nameof(CudaDriver.cuDevicePrimaryCtxRetain));
            ctx = new CudaPrimaryContextHandle(ctxPtr, handle);
            ctx.MakeCurrent();
            CudaDriver.Check(CudaDriver.cuStreamCreate(out var streamPtr, CudaDriver.CU_STREAM_NON_BLOCKING), nameof(CudaDriver.cuStreamCreate));
            str = new CudaStreamHandle(streamPtr, ctxPtr);
            var comp = new KernelCompiler(info.ComputeMajor, info.ComputeMinor, options.KernelCacheDirectory ?? KernelCacheKey.DefaultDirectory());
            device = new CudaDevice(info, ctx, str, comp);
            return true;
        }
        catch (CudaException ex)
        {
            str?.Dispose();
            ctx?.Dispose();
            reason = "CUDA backend unavailable: " + ex.Message;
            return false;
        }
        catch (EntryPointNotFoundException ex)
        {
            str?.Dispose();
            ctx?.Dispose();
            reason = "CUDA backend unavailable: a CUDA library lacks an expected function (" + ex.Message + "); install CUDA 12 or 13 libraries.";
            return false;
        }
    }

    private static CudaDeviceInfo QueryDevice(int device, int ordinal)
    {
        var name = stackalloc byte[256];
        CudaDriver.Check(CudaDriver.cuDeviceGetName(name, 256, device), nameof(CudaDriver.cuDeviceGetName));
        var major = Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        var minor = Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        var sms = Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        var l2 = Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
        CudaDriver.Check(CudaDriver.cuDeviceTotalMem(out var total, device), nameof(CudaDriver.cuDeviceTotalMem));
        CudaDriver.Check(CudaDriver.cuDriverGetVersion(out var driver), nameof(CudaDriver.cuDriverGetVersion));
        return new CudaDeviceInfo(ordinal, Marshal.PtrToStringUTF8((nint)name) ?? "?", major, minor, sms, (long)total, l2, driver, "", 0);
    }

    private static int Attribute(int device, int attribute)
    {
        CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(out var value, attribute, device), $"{nameof(CudaDriver.cuDeviceGetAttribute)}({attribute})");
        return value;
    }

    /// <summary>Free and total device memory as the driver sees it.</summary>
    public (long Free, long Total) DeviceMemoryInfo()
    {
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemGetInfo(out var free, out var total), nameof(CudaDriver.cuMemGetInfo));
        return ((long)free, (long)total);
    }

    internal void MakeCurrent() => context.MakeCurrent();

    // ---- Memory and copies -----------------------------------------------------------------

    /// <summary>Rents device memory from the pool.</summary>
    public CudaBuffer Allocate(long bytes, MemoryCategory category = MemoryCategory.Activations)
    {
        MakeCurrent();
        return Memory.Rent(bytes, category);
    }

    /// <summary>Copies host data into a buffer and waits for the copy.</summary>
    public void Upload<T>(ReadOnlySpan<T> source, CudaBuffer destination, long destinationOffsetBytes = 0)
        where T : unmanaged
    {
        var bytes = (long)source.Length * sizeof(T);
        CheckRange(destination, destinationOffsetBytes, bytes, nameof(destination));
        MakeCurrent();
        fixed (T* p = source)
        {
            if (bytes > 0 && bytes <= StagingLimit)
            {
                lock (stagingGate)
                {
                    var staged = Staging(bytes);
                    Buffer.MemoryCopy(p, (void*)staged, bytes, bytes);
                    CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(destination.Pointer + (ulong)destinationOffsetBytes, (void*)staged, (nuint)bytes, Stream), nameof(CudaDriver.cuMemcpyHtoDAsync));
                    Synchronize();
                }

                return;
            }

            CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(destination.Pointer + (ulong)destinationOffsetBytes, p, (nuint)bytes, Stream), nameof(CudaDriver.cuMemcpyHtoDAsync));
            Synchronize();
        }
    }

    /// <summary>Copies a buffer to host memory and waits for the copy.</summary>
    public void Download<T>(CudaBuffer source, Span<T> destination, long sourceOffsetBytes = 0)
        where T : unmanaged
    {
        var bytes = (long)destination.Length * sizeof(T);
        CheckRange(source, sourceOffsetBytes, bytes, nameof(source));
        MakeCurrent();
        fixed (T* p = destination)
        {
            if (bytes > 0 && bytes <= StagingLimit)
            {
                lock (stagingGate)
                {
                    var staged = Staging(bytes);
                    CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync((void*)staged, source.Pointer + (ulong)sourceOffsetBytes, (nuint)bytes, Stream), nameof(CudaDriver.cuMemcpyDtoHAsync));
                    Synchronize();
                    Buffer.MemoryCopy((void*)staged, p, bytes, bytes);
                }

                return;
            }

            CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync(p, source.Pointer + (ulong)sourceOffsetBytes, (nuint)bytes, Stream), nameof(CudaDriver.cuMemcpyDtoHAsync));
            Synchronize();
        }
    }

    /// <summary>
    /// Host copies up to this size go through one page-locked staging buffer: the copy engine reads and writes pinned
    /// memory directly, where a copy from pageable memory is staged by the driver in small synchronous chunks (a
    /// forward's 1 MiB input took 0.12 ms that way). Larger copies (weights at load) stay pageable.
    /// </summary>
    private const long StagingLimit = 16L << 20;

    private readonly Lock stagingGate = new();
    private CudaPinnedHostMemoryHandle? staging;

    /// <summary>The staging buffer, grown (to a power of two, at least 1 MiB) when <paramref name="bytes"/> do not fit.</summary>
    private nint Staging(long bytes)
    {
        if (staging is null || staging.Bytes < bytes)
        {
            staging?.Dispose();
            staging = null;
            staging = AllocatePinned(Math.Max(1L << 20, (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)bytes)));
        }

        return staging.Pointer;
    }

    /// <summary>Page-locked host memory of at least one byte, for copies the copy engine runs on its own.</summary>
    internal CudaPinnedHostMemoryHandle AllocatePinned(long bytes)
    {
        MakeCurrent();
        var size = Math.Max(1, bytes);
        CudaDriver.Check(CudaDriver.cuMemHostAlloc(out var pointer, (nuint)size, 0), nameof(CudaDriver.cuMemHostAlloc));
        return new CudaPinnedHostMemoryHandle(pointer, size, ContextHandle);
    }

    /// <summary>Queues a copy from page-locked host memory (no wait: a stream capture records it).</summary>
    internal void QueueCopyFromPinned(CudaPinnedHostMemoryHandle source, CudaBuffer destination, long bytes)
    {
        CheckRange(destination, 0, bytes, nameof(destination));
        if (bytes > source.Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes, $"bytes: expected at most the {source.Bytes} staged bytes.");
        }

        if (bytes > 0)
        {
            CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(destination.Pointer, (void*)source.Pointer, (nuint)bytes, Stream), nameof(CudaDriver.cuMemcpyHtoDAsync));
        }
    }

    /// <summary>Queues a copy into page-locked host memory (no wait: a stream capture records it).</summary>
    internal void QueueCopyToPinned(CudaBuffer source, CudaPinnedHostMemoryHandle destination, long bytes)
    {
        CheckRange(source, 0, bytes, nameof(source));
        if (bytes > destination.Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes, $"bytes: expected at most the {destination.Bytes} staged bytes.");
        }

        if (bytes > 0)
        {
            CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync((void*)destination.Pointer, source.Pointer, (nuint)bytes, Stream), nameof(CudaDriver.cuMemcpyDtoHAsync));
        }
    }

    /// <summary>Device-to-device copy, queued.</summary>
    public void Copy(CudaBuffer source, CudaBuffer destination, long bytes)
    {
        CheckRange(source, 0, bytes, nameof(source));
        CheckRange(destination, 0, bytes, nameof(destination));
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync(destination.Pointer, source.Pointer, (nuint)bytes, Stream), nameof(CudaDriver.cuMemcpyDtoDAsync));
    }

    /// <summary>Zeroes a buffer, queued.</summary>
    public void Zero(CudaBuffer buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemsetD8Async(buffer.Pointer, 0, (nuint)buffer.Bytes, Stream), nameof(CudaDriver.cuMemsetD8Async));
    }

    /// <summary>Fills a buffer with a 32-bit pattern, queued (used to poison outputs before a check).</summary>
    public void Fill32(CudaBuffer buffer, uint pattern)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemsetD32Async(buffer.Pointer, pattern, (nuint)(buffer.Bytes / 4), Stream), nameof(CudaDriver.cuMemsetD32Async));
    }

    /// <summary>Waits for all queued work; surfaces asynchronous kernel faults.</summary>
    public void Synchronize()
    {
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuStreamSynchronize(Stream), nameof(CudaDriver.cuStreamSynchronize));
    }

    internal static void CheckRange(CudaBuffer buffer, long offset, long bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (offset < 0 || bytes < 0 || offset + bytes > buffer.Bytes)
        {
            throw new ArgumentOutOfRangeException(name, $"{name}: expected a range within {buffer.Bytes} bytes, got offset {offset} + {bytes} bytes.");
        }
    }

    // ---- Kernels ---------------------------------------------------------------------------

    /// <summary>Loads (compiling on first use) a kernel of an embedded source with defines.</summary>
    internal nint Function(string sourceFile, string function, params string[] defines)
    {
        var moduleKey = sourceFile + "|" + string.Join(',', defines);
        lock (gate)
        {
            if (functions.TryGetValue((moduleKey, function), out var cached))
            {
                return cached;
            }

            MakeCurrent();
            if (!modules.TryGetValue(moduleKey, out var module))
            {
                var source = KernelCompiler.ReadSource(sourceFile);
                var image = compiler.GetImage(Path.GetFileNameWithoutExtension(sourceFile), source, defines);
                fixed (byte* p = image)
                {
                    CudaDriver.Check(CudaDriver.cuModuleLoadData(out var m, p), $"{nameof(CudaDriver.cuModuleLoadData)}({sourceFile})");
                    module = new CudaModuleHandle(m, ContextHandle);
                }

                modules[moduleKey] = module;
            }

            CudaDriver.Check(CudaDriver.cuModuleGetFunction(out var f, module.DangerousGetHandle(), function), $"{nameof(CudaDriver.cuModuleGetFunction)}({function})");
            functions[(moduleKey, function)] = f;
            return f;
        }
    }

    /// <summary>A kernel that takes more than 48 KiB of dynamic shared memory, its limit raised.</summary>
    internal nint FunctionWithSharedMemory(string sourceFile, string function, int sharedBytes, params string[] defines)
    {
        var f = Function(sourceFile, function, defines);
        CudaDriver.Check(
            CudaDriver.cuFuncSetAttribute(f, CudaDriver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes),
            nameof(CudaDriver.cuFuncSetAttribute));
        return f;
    }

    /// <summary>Registers and local-memory bytes per thread of a loaded kernel (from the compiled image), for the notes.</summary>
    internal (int Registers, int LocalBytes) KernelResources(string sourceFile, string function, params string[] defines)
    {
        var f = Function(sourceFile, function, defines);
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(out var regs, CudaDriver.CU_FUNC_ATTRIBUTE_NUM_REGS, f), nameof(CudaDriver.cuFuncGetAttribute));
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(out var local, CudaDriver.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, f), nameof(CudaDriver.cuFuncGetAttribute));
        return (regs, local);
    }

    internal void Launch(nint function, uint gridX, uint gridY, uint gridZ, uint block, uint sharedBytes, void** args, string name)
    {
        CudaDriver.Check(
            CudaDriver.cuLaunchKernel(function, gridX, gridY, gridZ, block, 1, 1, sharedBytes, Stream, args, null),
            $"{nameof(CudaDriver.cuLaunchKernel)}({name})");
    }

    /// <summary>A grid-stride loop's grid for <paramref name="n"/> items: enough blocks to fill the device, at most 16 per multiprocessor.</summary>
    internal uint GridFor(long n, int block) =>
        (uint)Math.Max(1, Math.Min((n + block - 1) / block, (long)Info.MultiprocessorCount * 16));

    // ---- Stream capture (CUDA graphs) ------------------------------------------------------

    /// <summary>
    /// Starts recording the stream: from now until <see cref="EndCapture"/> nothing queued runs, and a call that would wait
    /// for the device fails (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED). Relaxed mode: the pool may still call cuMemAlloc.
    /// </summary>
    internal void BeginCapture()
    {
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuStreamBeginCapture(Stream, CudaDriver.CU_STREAM_CAPTURE_MODE_RELAXED), nameof(CudaDriver.cuStreamBeginCapture));
    }

    /// <summary>Stops recording; the graph, instantiated and uploaded, or null with the reason where the capture or the instantiation failed.</summary>
    internal CudaGraphExecHandle? EndCapture(out string? failure)
    {
        MakeCurrent();
        var result = CudaDriver.cuStreamEndCapture(Stream, out var graph);
        if (result != CudaDriver.CUDA_SUCCESS || graph == 0)
        {
            failure = $"{nameof(CudaDriver.cuStreamEndCapture)}: {CudaDriver.Describe(result)}";
            if (graph != 0)
            {
                CudaDriver.cuGraphDestroy(graph);
            }

            return null;
        }

        CudaGraphExecHandle? handle = null;
        try
        {
            CudaDriver.Check(CudaDriver.cuGraphInstantiateWithFlags(out var exec, graph, 0), nameof(CudaDriver.cuGraphInstantiateWithFlags));
            handle = new CudaGraphExecHandle(exec, ContextHandle);
            CudaDriver.Check(CudaDriver.cuGraphUpload(exec, Stream), nameof(CudaDriver.cuGraphUpload));
            failure = null;
            return handle;
        }
        catch (CudaException ex)
        {
            handle?.Dispose();
            failure = ex.Message;
            return null;
        }
        finally
        {
            CudaDriver.cuGraphDestroy(graph);
        }
    }

    /// <summary>Queues one replay of a recorded graph.</summary>
    internal void Launch(CudaGraphExecHandle graph)
    {
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuGraphLaunch(graph.DangerousGetHandle(), Stream), nameof(CudaDriver.cuGraphLaunch));
    }

    // ---- Timing ----------------------------------------------------------------------------

    /// <summary>Milliseconds of device time the queued work of <paramref name="work"/> takes, measured with events.</summary>
    public float TimeMilliseconds(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuEventCreate(out var s, CudaDriver.CU_EVENT_DEFAULT), nameof(CudaDriver.cuEventCreate));
        using var start = new CudaEventHandle(s, ContextHandle);
        CudaDriver.Check(CudaDriver.cuEventCreate(out var e, CudaDriver.CU_EVENT_DEFAULT), nameof(CudaDriver.cuEventCreate));
        using var end = new CudaEventHandle(e, ContextHandle);
        CudaDriver.Check(CudaDriver.cuEventRecord(s, Stream), nameof(CudaDriver.cuEventRecord));
        work();
        CudaDriver.Check(CudaDriver.cuEventRecord(e, Stream), nameof(CudaDriver.cuEventRecord));
        CudaDriver.Check(CudaDriver.cuEventSynchronize(e), nameof(CudaDriver.cuEventSynchronize));
        CudaDriver.Check(CudaDriver.cuEventElapsedTime(out var ms, s, e), nameof(CudaDriver.cuEventElapsedTime));
        return ms;
    }

    /// <summary>A one-line description of the device and libraries.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.Append(Info.Name).Append(", sm_").Append(Info.ComputeMajor).Append(Info.ComputeMinor)
          .Append(", ").Append(Info.MultiprocessorCount).Append(" SMs, ")
          .Append(Info.TotalMemoryBytes >> 20).Append(" MiB, L2 ").Append(Info.L2CacheBytes >> 20).Append(" MiB, driver ")
          .Append(Info.DriverVersion).Append(", NVRTC ").Append(Info.NvrtcVersion).Append(", cuBLAS ").Append(Info.CublasVersion);
        return sb.ToString();
    }

    public void Dispose()
    {
        lock (gate)
        {
            MakeCurrent();
            CudaDriver.cuStreamSynchronize(Stream);
            Gemm.Dispose();
            lock (stagingGate)
            {
                staging?.Dispose();
                staging = null;
            }

            Memory.Dispose();
            foreach (var m in modules.Values)
            {
                m.Dispose();
            }

            modules.Clear();
            functions.Clear();
            stream.Dispose();
            context.Dispose();
        }
    }
}

using System.Runtime.InteropServices;
using System.Text;
using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Compilation;
using SparseInference.Tensors.Cuda.Interop;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

/// <summary>What the device says about itself.</summary>
public sealed record CudaDeviceInfo(
    int Ordinal, string Name, int ComputeMajor, int ComputeMinor, int MultiprocessorCount,
    long TotalMemoryBytes, long L2CacheBytes, int DriverVersion, string NvrtcVersion, int CublasVersion);

/// <summary>
/// The CUDA compute backend: one device, its primary context, one stream, a cuBLAS handle,
/// NVRTC-compiled kernels and a caching device-memory pool. All work is queued on <see cref="Stream"/>.
/// Create it with <see cref="TryCreate"/>, which reports why it is unavailable instead of throwing.
/// </summary>
public sealed unsafe partial class CudaBackend : IDisposable
{
    private const int DenseTile = 64;
    private readonly CudaPrimaryContextHandle context;
    private readonly CudaStreamHandle stream;
    private readonly CublasHandle cublas;
    private readonly KernelCompiler compiler;
    private readonly Dictionary<string, CudaModuleHandle> modules = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Module, string Function), nint> functions = [];
    private readonly Lock gate = new();

    private CudaBackend(CudaDeviceInfo info, CudaPrimaryContextHandle context, CudaStreamHandle stream, CublasHandle cublas, KernelCompiler compiler)
    {
        Device = info;
        this.context = context;
        this.stream = stream;
        this.cublas = cublas;
        this.compiler = compiler;
        Memory = new DeviceMemoryPool(context.DangerousGetHandle());
        AttentionVariant = HasWgmma(info) ? AttentionKernelVariant.Hopper : AttentionKernelVariant.Default;
    }

    public CudaDeviceInfo Device { get; }

    /// <summary>The caching allocator behind every buffer of this backend.</summary>
    public DeviceMemoryPool Memory { get; }

    /// <summary>Kernel compilations not served from the disk cache.</summary>
    public int KernelCompilations => compiler.Compilations;

    internal nint Stream => stream.DangerousGetHandle();

    /// <summary>
    /// Opens device <paramref name="ordinal"/>. Returns false with a reason (what is missing and what
    /// to install, or the failing call) when CUDA cannot be used here; never throws for that.
    /// </summary>
    public static bool TryCreate(out CudaBackend? backend, out string? reason, int ordinal = 0, string? kernelCacheDirectory = null)
    {
        backend = null;
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
            if (ordinal < 0 || ordinal >= count)
            {
                reason = $"CUDA backend unavailable: device ordinal {ordinal} requested, {count} device(s) present.";
                return false;
            }

            CudaDriver.Check(CudaDriver.cuDeviceGet(out var device, ordinal), nameof(CudaDriver.cuDeviceGet));
            var info = QueryDevice(device, ordinal, out var major, out var minor);
            if (major < 8)
            {
                reason = $"CUDA backend unavailable: {info.Name} has compute capability {major}.{minor}; the kernels need 8.0 or newer (BF16 tensor cores).";
                return false;
            }

            CudaDriver.Check(CudaDriver.cuDevicePrimaryCtxRetain(out var ctxPtr, device), nameof(CudaDriver.cuDevicePrimaryCtxRetain));
            ctx = new CudaPrimaryContextHandle(ctxPtr, device);
            ctx.MakeCurrent();
            CudaDriver.Check(CudaDriver.cuStreamCreate(out var streamPtr, CudaDriver.CU_STREAM_NON_BLOCKING), nameof(CudaDriver.cuStreamCreate));
            str = new CudaStreamHandle(streamPtr, ctxPtr);
            CuBlas.Check(CuBlas.cublasCreate_v2(out var blasPtr), nameof(CuBlas.cublasCreate_v2));
            var blas = new CublasHandle(blasPtr, ctxPtr);
            CuBlas.Check(CuBlas.cublasSetStream_v2(blasPtr, streamPtr), nameof(CuBlas.cublasSetStream_v2));
            CuBlas.Check(CuBlas.cublasGetVersion_v2(blasPtr, out var blasVersion), nameof(CuBlas.cublasGetVersion_v2));
            var comp = new KernelCompiler(major, minor, kernelCacheDirectory ?? KernelCacheKey.DefaultDirectory());
            info = info with { NvrtcVersion = $"{comp.NvrtcMajor}.{comp.NvrtcMinor}", CublasVersion = blasVersion };
            backend = new CudaBackend(info, ctx, str, blas, comp);
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

    private static CudaDeviceInfo QueryDevice(int device, int ordinal, out int major, out int minor)
    {
        var name = stackalloc byte[256];
        CudaDriver.Check(CudaDriver.cuDeviceGetName(name, 256, device), nameof(CudaDriver.cuDeviceGetName));
        major = Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        minor = Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
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
        context.MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemGetInfo(out var free, out var total), nameof(CudaDriver.cuMemGetInfo));
        return ((long)free, (long)total);
    }

    // ---- Memory and copies -----------------------------------------------------------------

    /// <summary>Rents device memory from the pool.</summary>
    public CudaBuffer Allocate(long bytes, MemoryCategory category = MemoryCategory.Activations)
    {
        context.MakeCurrent();
        return Memory.Rent(bytes, category);
    }

    /// <summary>Copies host data into a buffer and waits for the copy.</summary>
    public void Upload<T>(ReadOnlySpan<T> source, CudaBuffer destination, long destinationOffsetBytes = 0)
        where T : unmanaged
    {
        var bytes = (long)source.Length * sizeof(T);
        CheckRange(destination, destinationOffsetBytes, bytes, nameof(destination));
        context.MakeCurrent();
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
        context.MakeCurrent();
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
            var size = Math.Max(1L << 20, (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)bytes));
            CudaDriver.Check(CudaDriver.cuMemHostAlloc(out var pointer, (nuint)size, 0), nameof(CudaDriver.cuMemHostAlloc));
            staging = new CudaPinnedHostMemoryHandle(pointer, size, context.DangerousGetHandle());
        }

        return staging.Pointer;
    }

    /// <summary>Device-to-device copy, queued.</summary>
    public void Copy(CudaBuffer source, CudaBuffer destination, long bytes)
    {
        CheckRange(source, 0, bytes, nameof(source));
        CheckRange(destination, 0, bytes, nameof(destination));
        context.MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync(destination.Pointer, source.Pointer, (nuint)bytes, Stream), nameof(CudaDriver.cuMemcpyDtoDAsync));
    }

    /// <summary>Zeroes a buffer, queued.</summary>
    public void Zero(CudaBuffer buffer)
    {
        context.MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemsetD8Async(buffer.Pointer, 0, (nuint)buffer.Bytes, Stream), nameof(CudaDriver.cuMemsetD8Async));
    }

    /// <summary>Fills a buffer with a 32-bit pattern, queued (used to poison outputs before a check).</summary>
    public void Fill32(CudaBuffer buffer, uint pattern)
    {
        context.MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemsetD32Async(buffer.Pointer, pattern, (nuint)(buffer.Bytes / 4), Stream), nameof(CudaDriver.cuMemsetD32Async));
    }

    /// <summary>Waits for all queued work; surfaces asynchronous kernel faults.</summary>
    public void Synchronize()
    {
        context.MakeCurrent();
        CudaDriver.Check(CudaDriver.cuStreamSynchronize(Stream), nameof(CudaDriver.cuStreamSynchronize));
    }

    private static void CheckRange(CudaBuffer buffer, long offset, long bytes, string name)
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

            context.MakeCurrent();
            if (!modules.TryGetValue(moduleKey, out var module))
            {
                var source = KernelCompiler.ReadSource(sourceFile);
                var image = compiler.GetImage(Path.GetFileNameWithoutExtension(sourceFile), source, defines);
                fixed (byte* p = image)
                {
                    CudaDriver.Check(CudaDriver.cuModuleLoadData(out var m, p), $"{nameof(CudaDriver.cuModuleLoadData)}({sourceFile})");
                    module = new CudaModuleHandle(m, context.DangerousGetHandle());
                }

                modules[moduleKey] = module;
            }

            CudaDriver.Check(CudaDriver.cuModuleGetFunction(out var f, module.DangerousGetHandle(), function), $"{nameof(CudaDriver.cuModuleGetFunction)}({function})");
            functions[(moduleKey, function)] = f;
            return f;
        }
    }

    /// <summary>Registers and local-memory bytes per thread of the attention kernel built for a head dim, query tile and variant.</summary>
    public (int Registers, int LocalBytes) AttentionResources(int headDim, int queryTile, AttentionKernelVariant variant)
    {
        if (variant.Wgmma && HasWgmma(Device) && headDim == 64 && queryTile == 128)
        {
            return KernelResources("attention_sm90.cu", "attention_fwd_sm90", WgmmaDefines(variant, CudaElementType.BFloat16));
        }

        var mTiles = headDim == 128 ? 1 : variant.RowsPerWarp / 16;
        var wide = variant.WideKeyTiles && !variant.Pipelined;
        return KernelResources("attention.cu", "attention_fwd",
            $"HEAD_DIM={headDim}", $"QUERY_TILE={queryTile}", $"KEY_TILE={Math.Min(variant.Pipelined ? 32 : wide ? 128 : DenseTile, queryTile)}", "USE_FP16=0",
            $"M_TILES={mTiles}", $"FAST_EXP={(variant.FastExp && !variant.Pipelined ? 1 : 0)}", $"MIN_BLOCKS={Math.Max(1, variant.MinBlocksPerMultiprocessor)}",
            $"STAGES={(variant.Pipelined ? 3 : variant.Stages)}", $"PIPELINE={(variant.Pipelined ? 1 : 0)}", $"Q_IN_SMEM={(wide ? 1 : 0)}");
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

    private uint GridFor(long n, int block) =>
        (uint)Math.Max(1, Math.Min((n + block - 1) / block, (long)Device.MultiprocessorCount * 16));

    // ---- Element-wise and row-wise ops (FP32) ---------------------------------------------

    /// <summary>
    /// y = LayerNorm(x)·γ + β over rows of <paramref name="cols"/> values, biased variance; <paramref name="y16"/>
    /// (optional) receives the same values rounded to BF16; without <paramref name="writeFloat32"/> only those are written.
    /// </summary>
    public void LayerNorm(CudaBuffer x, CudaBuffer gamma, CudaBuffer beta, CudaBuffer y, int rows, int cols, float eps, CudaBuffer? y16 = null,
        bool writeFloat32 = true)
    {
        if (!writeFloat32 && y16 is null)
        {
            throw new ArgumentException("y16: expected a BF16 output when the FP32 output is not written.", nameof(y16));
        }

        CheckRange(x, 0, (long)rows * cols * 4, nameof(x));
        CheckRange(y, 0, (long)rows * cols * 4, nameof(y));
        CheckRange(gamma, 0, (long)cols * 4, nameof(gamma));
        CheckRange(beta, 0, (long)cols * 4, nameof(beta));
        if (y16 is not null)
        {
            CheckRange(y16, 0, (long)rows * cols * 2, nameof(y16));
        }

        context.MakeCurrent();
        ulong px = x.Pointer, pg = gamma.Pointer, pb = beta.Pointer, py = writeFloat32 ? y.Pointer : 0, py16 = y16?.Pointer ?? 0;

        // Rows of 128·k values (k ≤ 8) at 16-byte aligned addresses stay in registers: x is read once, 16 bytes at a time.
        var vector = cols % 128 == 0 && cols <= 1024 && (px | pg | pb | py) % 16 == 0 && py16 % 8 == 0;
        var name = vector ? "layer_norm_f32_vec" : "layer_norm_f32";
        var f = Function("elementwise.cu", name);
        void** args = stackalloc void*[] { &px, &pg, &pb, &py, &py16, &rows, &cols, &eps };
        const int warps = 8;
        Launch(f, (uint)((rows + warps - 1) / warps), 1, 1, warps * 32, 0, args, name);
    }

    /// <summary>
    /// LayerNorm of BF16 rows (a BF16 residual stream): as <see cref="LayerNorm"/>, x holding rows·cols BF16 values.
    /// <paramref name="y"/> (FP32) and <paramref name="y16"/> (BF16) are each optional; at least one is written.
    /// </summary>
    public void LayerNormBFloat16Input(CudaBuffer x, CudaBuffer gamma, CudaBuffer beta, CudaBuffer? y, CudaBuffer? y16, int rows, int cols, float eps)
    {
        if (y is null && y16 is null)
        {
            throw new ArgumentException("y: expected an FP32 or a BF16 output, got neither.", nameof(y));
        }

        CheckRange(x, 0, (long)rows * cols * 2, nameof(x));
        CheckRange(gamma, 0, (long)cols * 4, nameof(gamma));
        CheckRange(beta, 0, (long)cols * 4, nameof(beta));
        if (y is not null)
        {
            CheckRange(y, 0, (long)rows * cols * 4, nameof(y));
        }

        if (y16 is not null)
        {
            CheckRange(y16, 0, (long)rows * cols * 2, nameof(y16));
        }

        context.MakeCurrent();
        ulong px = x.Pointer, pg = gamma.Pointer, pb = beta.Pointer, py = y?.Pointer ?? 0, py16 = y16?.Pointer ?? 0;
        var vector = cols % 128 == 0 && cols <= 1024 && (pg | pb | py) % 16 == 0 && (px | py16) % 8 == 0;
        var name = vector ? "layer_norm_bf16_vec" : "layer_norm_bf16";
        var f = Function("residual.cu", name);
        void** args = stackalloc void*[] { &px, &pg, &pb, &py, &py16, &rows, &cols, &eps };
        const int warps = 8;
        Launch(f, (uint)((rows + warps - 1) / warps), 1, 1, warps * 32, 0, args, name);
    }

    /// <summary>
    /// C = alpha·A·Bᵀ + beta·C + bias for a small inner dimension k ≤ 16 (A [m, k], B [n, k] FP32, bias [n] FP32 or
    /// null): tiles of 64 rows × 256 columns with the operands staged in shared memory, FP32 arithmetic; C FP32, or BF16
    /// with <paramref name="cBf16"/>.
    /// </summary>
    public void LinearSmallK(CudaBuffer a, CudaBuffer b, CudaBuffer? bias, CudaBuffer c, bool cBf16, float alpha, float beta, int m, int n, int k)
    {
        if (k < 1 || k > 16)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k: expected 1 … 16 (SMALL_K_MAX of small_k.cu).");
        }

        if (m > 65535L * 64)
        {
            throw new ArgumentOutOfRangeException(nameof(m), m, $"m: expected at most {65535L * 64} rows (the grid's second dimension).");
        }

        CheckRange(a, 0, (long)m * k * 4, nameof(a));
        CheckRange(b, 0, (long)n * k * 4, nameof(b));
        CheckRange(c, 0, (long)m * n * (cBf16 ? 2 : 4), nameof(c));
        if (bias is not null)
        {
            CheckRange(bias, 0, (long)n * 4, nameof(bias));
        }

        context.MakeCurrent();
        var f = Function("small_k.cu", "linear_small_k");
        ulong pa = a.Pointer, pb = b.Pointer, pbias = bias?.Pointer ?? 0, pc = c.Pointer;
        int flag = cBf16 ? 1 : 0;
        void** args = stackalloc void*[] { &pa, &pb, &pbias, &pc, &flag, &alpha, &beta, &m, &n, &k };
        const int Rows = 64, Columns = 256; // SMALL_K_ROWS, SMALL_K_COLS of small_k.cu
        Launch(f, (uint)((n + Columns - 1) / Columns), (uint)((m + Rows - 1) / Rows), 1, Columns, 0, args, "linear_small_k");
    }

    /// <summary>y = a + b over n elements, each of a, b, y FP32 or BF16 (the flag says which); y may be a or b.</summary>
    public void AddMixed(CudaBuffer a, bool aBf16, CudaBuffer b, bool bBf16, CudaBuffer y, bool yBf16, long n)
    {
        CheckRange(a, 0, n * (aBf16 ? 2 : 4), nameof(a));
        CheckRange(b, 0, n * (bBf16 ? 2 : 4), nameof(b));
        CheckRange(y, 0, n * (yBf16 ? 2 : 4), nameof(y));
        context.MakeCurrent();
        var f = Function("residual.cu", "add_mixed");
        ulong pa = a.Pointer, pb = b.Pointer, py = y.Pointer;
        int fa = aBf16 ? 1 : 0, fb = bBf16 ? 1 : 0, fy = yBf16 ? 1 : 0;
        void** args = stackalloc void*[] { &pa, &fa, &pb, &fb, &py, &fy, &n };
        Launch(f, GridFor(n, 256), 1, 1, 256, 0, args, "add_mixed");
    }

    /// <summary>
    /// y = GELU(x) (exact erf form, y may be x) and y16 = y rounded to BF16, in one pass. Falls back to two
    /// passes when n or the addresses do not allow 16-byte accesses.
    /// </summary>
    public void GeluWithBFloat16(CudaBuffer x, CudaBuffer y, CudaBuffer y16, long n, int cols)
    {
        CheckRange(x, 0, n * 4, nameof(x));
        CheckRange(y, 0, n * 4, nameof(y));
        CheckRange(y16, 0, n * 2, nameof(y16));
        if (n % 4 != 0 || x.Pointer % 16 != 0 || y.Pointer % 16 != 0 || y16.Pointer % 8 != 0)
        {
            BiasGelu(x, null, y, n, cols);
            ConvertToBFloat16(y, y16, n);
            return;
        }

        context.MakeCurrent();
        var f = Function("elementwise.cu", "gelu_f32_bf16x4");
        ulong px = x.Pointer, py = y.Pointer, py16 = y16.Pointer;
        var n4 = n / 4;
        void** args = stackalloc void*[] { &px, &py, &py16, &n4 };
        Launch(f, GridFor(n4, 256), 1, 1, 256, 0, args, "gelu_f32_bf16x4");
    }

    /// <summary>y = GELU(x + bias), exact erf form; bias broadcast over rows of <paramref name="cols"/>; bias may be null.</summary>
    public void BiasGelu(CudaBuffer x, CudaBuffer? bias, CudaBuffer y, long n, int cols)
    {
        CheckRange(x, 0, n * 4, nameof(x));
        CheckRange(y, 0, n * 4, nameof(y));
        context.MakeCurrent();
        var f = Function("elementwise.cu", "bias_gelu_f32");
        ulong px = x.Pointer, pb = bias?.Pointer ?? 0, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &pb, &py, &n, &cols };
        Launch(f, GridFor(n, 256), 1, 1, 256, 0, args, "bias_gelu_f32");
    }

    /// <summary>y = x + bias, bias broadcast over rows of <paramref name="cols"/>.</summary>
    public void BiasAdd(CudaBuffer x, CudaBuffer bias, CudaBuffer y, long n, int cols)
    {
        CheckRange(x, 0, n * 4, nameof(x));
        CheckRange(y, 0, n * 4, nameof(y));
        CheckRange(bias, 0, (long)cols * 4, nameof(bias));
        context.MakeCurrent();
        var f = Function("elementwise.cu", "bias_add_f32");
        ulong px = x.Pointer, pb = bias.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &pb, &py, &n, &cols };
        Launch(f, GridFor(n, 256), 1, 1, 256, 0, args, "bias_add_f32");
    }

    /// <summary>y = a + b (residual connection).</summary>
    public void Add(CudaBuffer a, CudaBuffer b, CudaBuffer y, long n)
    {
        CheckRange(a, 0, n * 4, nameof(a));
        CheckRange(b, 0, n * 4, nameof(b));
        CheckRange(y, 0, n * 4, nameof(y));
        context.MakeCurrent();
        var f = Function("elementwise.cu", "add_f32");
        ulong pa = a.Pointer, pb = b.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &pa, &pb, &py, &n };
        Launch(f, GridFor(n, 256), 1, 1, 256, 0, args, "add_f32");
    }

    /// <summary>y = alpha·x.</summary>
    public void Scale(CudaBuffer x, float alpha, CudaBuffer y, long n)
    {
        CheckRange(x, 0, n * 4, nameof(x));
        CheckRange(y, 0, n * 4, nameof(y));
        context.MakeCurrent();
        var f = Function("elementwise.cu", "scale_f32");
        ulong px = x.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &alpha, &py, &n };
        Launch(f, GridFor(n, 256), 1, 1, 256, 0, args, "scale_f32");
    }

    /// <summary>y = 1/(1 + e^−x).</summary>
    public void Sigmoid(CudaBuffer x, CudaBuffer y, long n)
    {
        CheckRange(x, 0, n * 4, nameof(x));
        CheckRange(y, 0, n * 4, nameof(y));
        context.MakeCurrent();
        var f = Function("elementwise.cu", "sigmoid_f32");
        ulong px = x.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &py, &n };
        Launch(f, GridFor(n, 256), 1, 1, 256, 0, args, "sigmoid_f32");
    }

    /// <summary>Softmax over rows of <paramref name="cols"/> values.</summary>
    public void Softmax(CudaBuffer x, CudaBuffer y, int rows, int cols)
    {
        CheckRange(x, 0, (long)rows * cols * 4, nameof(x));
        CheckRange(y, 0, (long)rows * cols * 4, nameof(y));
        context.MakeCurrent();
        var f = Function("elementwise.cu", "softmax_f32");
        ulong px = x.Pointer, py = y.Pointer;
        void** args = stackalloc void*[] { &px, &py, &rows, &cols };
        const int warps = 8;
        Launch(f, (uint)((rows + warps - 1) / warps), 1, 1, warps * 32, 0, args, "softmax_f32");
    }

    // ---- Indexing ---------------------------------------------------------------------------

    /// <summary>out[i] = src[idx[i]] for rows of <paramref name="rowBytes"/> bytes (a multiple of 2); indices already range-checked.</summary>
    public void GatherRows(CudaBuffer source, CudaBuffer indices, CudaBuffer output, long numRows, long rowBytes)
    {
        if (rowBytes % 2 != 0)
        {
            throw new ArgumentException($"rowBytes: expected a multiple of 2, got {rowBytes}.", nameof(rowBytes));
        }

        CheckRange(indices, 0, numRows * 4, nameof(indices));
        CheckRange(output, 0, numRows * rowBytes, nameof(output));
        context.MakeCurrent();
        var f = Function("indexing.cu", "gather_rows_u16");
        ulong ps = source.Pointer, pi = indices.Pointer, po = output.Pointer;
        var words = rowBytes / 2;
        void** args = stackalloc void*[] { &ps, &pi, &po, &numRows, &words };
        Launch(f, GridFor(numRows * words, 256), 1, 1, 256, 0, args, "gather_rows_u16");
    }

    /// <summary>dst[idx[i]] += scale[i]·src[i] over FP32 rows; indices distinct and range-checked.</summary>
    public void ScatterAddRows(CudaBuffer source, CudaBuffer indices, CudaBuffer? scale, CudaBuffer destination, long numRows, long rowElements)
    {
        CheckRange(source, 0, numRows * rowElements * 4, nameof(source));
        CheckRange(indices, 0, numRows * 4, nameof(indices));
        context.MakeCurrent();
        var f = Function("indexing.cu", "scatter_add_rows_f32");
        ulong ps = source.Pointer, pi = indices.Pointer, pscale = scale?.Pointer ?? 0, pd = destination.Pointer;
        void** args = stackalloc void*[] { &ps, &pi, &pscale, &pd, &numRows, &rowElements };
        Launch(f, GridFor(numRows * rowElements, 256), 1, 1, 256, 0, args, "scatter_add_rows_f32");
    }

    /// <summary>Per row of <paramref name="n"/> FP32 values: the k largest (descending, ties → lower index) and their indices.</summary>
    public void TopK(CudaBuffer x, CudaBuffer values, CudaBuffer indices, int rows, int n, int k)
    {
        CheckRange(x, 0, (long)rows * n * 4, nameof(x));
        CheckRange(values, 0, (long)rows * k * 4, nameof(values));
        CheckRange(indices, 0, (long)rows * k * 4, nameof(indices));
        context.MakeCurrent();
        var f = Function("indexing.cu", "topk_rows_f32");
        ulong px = x.Pointer, pv = values.Pointer, pi = indices.Pointer;
        void** args = stackalloc void*[] { &px, &pv, &pi, &rows, &n, &k };
        const int warps = 8;
        Launch(f, (uint)((rows + warps - 1) / warps), 1, 1, warps * 32, 0, args, "topk_rows_f32");
    }

    /// <summary>y = GELU(y) in place on BF16 values (exact erf form, computed in FP32, rounded back to BF16).</summary>
    public void GeluBFloat16(CudaBuffer y, long n)
    {
        CheckRange(y, 0, n * 2, nameof(y));
        context.MakeCurrent();
        ulong py = y.Pointer;
        if (n % 8 == 0 && py % 16 == 0)
        {
            var n8 = n / 8;
            void** args8 = stackalloc void*[] { &py, &n8 };
            Launch(Function("elementwise.cu", "gelu_bf16x8_inplace"), GridFor(n8, 256), 1, 1, 256, 0, args8, "gelu_bf16x8_inplace");
            return;
        }

        void** args = stackalloc void*[] { &py, &n };
        Launch(Function("elementwise.cu", "gelu_bf16_inplace"), GridFor(n, 256), 1, 1, 256, 0, args, "gelu_bf16_inplace");
    }

    /// <summary>FP32 → BF16 (round to nearest even).</summary>
    public void ConvertToBFloat16(CudaBuffer x, CudaBuffer y, long n)
    {
        CheckRange(x, 0, n * 4, nameof(x));
        CheckRange(y, 0, n * 2, nameof(y));
        context.MakeCurrent();
        ulong px = x.Pointer, py = y.Pointer;
        if (n % 4 == 0 && px % 16 == 0 && py % 8 == 0)
        {
            var n4 = n / 4;
            void** args4 = stackalloc void*[] { &px, &py, &n4 };
            Launch(Function("elementwise.cu", "f32_to_bf16_x4"), GridFor(n4, 256), 1, 1, 256, 0, args4, "f32_to_bf16_x4");
            return;
        }

        var f = Function("elementwise.cu", "f32_to_bf16_kernel");
        void** args = stackalloc void*[] { &px, &py, &n };
        Launch(f, GridFor(n, 256), 1, 1, 256, 0, args, "f32_to_bf16_kernel");
    }

    /// <summary>BF16 → FP32.</summary>
    public void ConvertToFloat32(CudaBuffer x, CudaBuffer y, long n)
    {
        CheckRange(x, 0, n * 2, nameof(x));
        CheckRange(y, 0, n * 4, nameof(y));
        context.MakeCurrent();
        ulong px = x.Pointer, py = y.Pointer;
        if (n % 4 == 0 && px % 8 == 0 && py % 16 == 0)
        {
            var n4 = n / 4;
            void** args4 = stackalloc void*[] { &px, &py, &n4 };
            Launch(Function("elementwise.cu", "bf16_to_f32_x4"), GridFor(n4, 256), 1, 1, 256, 0, args4, "bf16_to_f32_x4");
            return;
        }

        var f = Function("elementwise.cu", "bf16_to_f32_kernel");
        void** args = stackalloc void*[] { &px, &py, &n };
        Launch(f, GridFor(n, 256), 1, 1, 256, 0, args, "bf16_to_f32_kernel");
    }

    // ---- Matrix products (cuBLAS) ----------------------------------------------------------

    /// <summary>
    /// Row-major C[m,n] = A[m,k]·B, with B given as [k,n], or as [n,k] when
    /// <paramref name="transposeB"/> (a PyTorch Linear weight: y = x·Wᵀ). FP32 accumulation;
    /// inputs FP32, BF16 or FP16; C has the input type.
    /// </summary>
    public void MatMul(CudaBuffer a, CudaBuffer b, CudaBuffer c, int m, int n, int k, bool transposeB, CudaElementType type = CudaElementType.Float32) =>
        MatMulStridedBatched(a, b, c, m, n, k, transposeB, 1, 0, 0, 0, type);

    /// <summary>Batched <see cref="MatMul"/> with element strides between the batch's matrices.</summary>
    public void MatMulStridedBatched(CudaBuffer a, CudaBuffer b, CudaBuffer c, int m, int n, int k, bool transposeB,
        int batch, long strideA, long strideB, long strideC, CudaElementType type = CudaElementType.Float32) =>
        Gemm(a, b, c, m, n, k, transposeA: false, transposeB, batch, strideA, strideB, strideC, 1f, 0f, type);

    /// <summary>
    /// Row-major C = alpha·op(A)·op(B) + beta·C for a batch of strided matrices (stride 0 broadcasts an
    /// operand). op(A) is [m,k] (A stored [k,m] when transposed); op(B) is [k,n] (B stored [n,k] when transposed).
    /// </summary>
    public void Gemm(CudaBuffer a, CudaBuffer b, CudaBuffer c, int m, int n, int k, bool transposeA, bool transposeB,
        int batch, long strideA, long strideB, long strideC, float alpha, float beta, CudaElementType type = CudaElementType.Float32,
        CudaElementType? outputType = null)
    {
        var size = type.Size();
        var outType = outputType ?? type;
        CheckRange(a, 0, (((long)(batch - 1) * strideA) + ((long)m * k)) * size, nameof(a));
        CheckRange(b, 0, (((long)(batch - 1) * strideB) + ((long)k * n)) * size, nameof(b));
        CheckRange(c, 0, (((long)(batch - 1) * strideC) + ((long)m * n)) * outType.Size(), nameof(c));
        context.MakeCurrent();
        static int CublasType(CudaElementType t) => t switch
        {
            CudaElementType.Float32 => CuBlas.CUDA_R_32F,
            CudaElementType.BFloat16 => CuBlas.CUDA_R_16BF,
            _ => CuBlas.CUDA_R_16F,
        };

        // cuBLAS runs 16-bit operands with an FP32 output and FP32 compute (BF16 tensor cores, FP32 accumulation).
        var dataType = CublasType(type);
        var outputDataType = CublasType(outType);

        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands, keep the memory.
        CuBlas.Check(
            CuBlas.cublasGemmStridedBatchedEx(
                cublas.DangerousGetHandle(),
                transposeB ? CuBlas.CUBLAS_OP_T : CuBlas.CUBLAS_OP_N, transposeA ? CuBlas.CUBLAS_OP_T : CuBlas.CUBLAS_OP_N,
                n, m, k,
                &alpha, b.Pointer, dataType, transposeB ? k : n, strideB,
                a.Pointer, dataType, transposeA ? m : k, strideA,
                &beta, c.Pointer, outputDataType, n, strideC,
                batch, CuBlas.CUBLAS_COMPUTE_32F, CuBlas.CUBLAS_GEMM_DEFAULT),
            nameof(CuBlas.cublasGemmStridedBatchedEx));
    }

    /// <summary>
    /// Row-major C = alpha·op(A)·op(B) + beta·C (+ bias[N] broadcast over rows) through cuBLASLt: A and B BF16,
    /// C FP32 (bias FP32), or C BF16 (bias BF16) with <paramref name="bf16Output"/>, FP32 accumulation, the bias added
    /// in the product's epilogue (no separate pass over C). One
    /// matrix (no batch). Plans (descriptors and the heuristic's algorithm) are cached per shape. Returns false,
    /// having queued nothing, where cuBLASLt offers no algorithm for the shape (the caller then uses <see cref="Gemm"/>).
    /// </summary>
    public bool GemmBFloat16(CudaBuffer a, CudaBuffer b, CudaBuffer c, int m, int n, int k, bool transposeA, bool transposeB,
        float alpha, float beta, CudaBuffer? bias, bool bf16Output = false, bool gelu = false)
    {
        var outSize = bf16Output ? 2 : 4;
        CheckRange(a, 0, (long)m * k * 2, nameof(a));
        CheckRange(b, 0, (long)k * n * 2, nameof(b));
        CheckRange(c, 0, (long)m * n * outSize, nameof(c));
        if (bias is not null)
        {
            CheckRange(bias, 0, (long)n * outSize, nameof(bias));
        }

        context.MakeCurrent();
        var plan = LtPlanFor(m, n, k, transposeA, transposeB, bias is not null, bf16Output, gelu);
        if (plan is null)
        {
            return false;
        }

        var lt = LtHandle();
        if (bias is not null)
        {
            var pointer = bias.Pointer;
            CuBlas.Check(CuBlasLt.cublasLtMatmulDescSetAttribute(plan.Desc, CuBlasLt.CUBLASLT_MATMUL_DESC_BIAS_POINTER, &pointer, (nuint)sizeof(ulong)),
                nameof(CuBlasLt.cublasLtMatmulDescSetAttribute));
        }

        var algo = plan.Algo;
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B's memory is cuBLAS's first operand.
        CuBlas.Check(
            CuBlasLt.cublasLtMatmul(lt, plan.Desc, &alpha, b.Pointer, plan.ALayout, a.Pointer, plan.BLayout,
                &beta, c.Pointer, plan.CLayout, c.Pointer, plan.CLayout, algo.Algo, ltWorkspace!.Pointer, (nuint)ltWorkspace.Bytes, Stream),
            nameof(CuBlasLt.cublasLtMatmul));
        return true;
    }

    private const long LtWorkspaceBytes = 32L << 20;
    private CublasLtHandle? ltHandle;
    private CudaBuffer? ltWorkspace;
    private readonly Dictionary<(int M, int N, int K, bool TA, bool TB, bool Bias, bool Bf16Out, bool Gelu), LtPlan?> ltPlans = [];

    private nint LtHandle()
    {
        if (ltHandle is null)
        {
            CuBlas.Check(CuBlasLt.cublasLtCreate(out var h), nameof(CuBlasLt.cublasLtCreate));
            ltHandle = new CublasLtHandle(h);
            ltWorkspace = Allocate(LtWorkspaceBytes, MemoryCategory.Workspace);
        }

        return ltHandle.DangerousGetHandle();
    }

    private LtPlan? LtPlanFor(int m, int n, int k, bool transposeA, bool transposeB, bool bias, bool bf16Output, bool gelu)
    {
        var key = (m, n, k, transposeA, transposeB, bias, bf16Output, gelu);
        if (ltPlans.TryGetValue(key, out var cached))
        {
            return cached;
        }

        var lt = LtHandle();
        var plan = new LtPlan();
        try
        {
            CuBlas.Check(CuBlasLt.cublasLtMatmulDescCreate(out plan.Desc, CuBlas.CUBLAS_COMPUTE_32F, CuBlas.CUDA_R_32F), nameof(CuBlasLt.cublasLtMatmulDescCreate));
            int opA = transposeB ? CuBlas.CUBLAS_OP_T : CuBlas.CUBLAS_OP_N, opB = transposeA ? CuBlas.CUBLAS_OP_T : CuBlas.CUBLAS_OP_N;
            int epilogue = (bias, gelu) switch
            {
                (true, true) => CuBlasLt.CUBLASLT_EPILOGUE_GELU_BIAS,
                (false, true) => CuBlasLt.CUBLASLT_EPILOGUE_GELU,
                (true, false) => CuBlasLt.CUBLASLT_EPILOGUE_BIAS,
                _ => CuBlasLt.CUBLASLT_EPILOGUE_DEFAULT,
            };
            SetDesc(plan.Desc, CuBlasLt.CUBLASLT_MATMUL_DESC_TRANSA, opA);
            SetDesc(plan.Desc, CuBlasLt.CUBLASLT_MATMUL_DESC_TRANSB, opB);
            SetDesc(plan.Desc, CuBlasLt.CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);

            // Column-major view: first operand = B's memory ([k,n] row-major = n×k column-major, or [n,k] = k×n when
            // transposed), second = A's memory, output = n×m column-major with leading dimension n.
            CuBlas.Check(CuBlasLt.cublasLtMatrixLayoutCreate(out plan.ALayout, CuBlas.CUDA_R_16BF, (ulong)(transposeB ? k : n), (ulong)(transposeB ? n : k), transposeB ? k : n),
                nameof(CuBlasLt.cublasLtMatrixLayoutCreate));
            CuBlas.Check(CuBlasLt.cublasLtMatrixLayoutCreate(out plan.BLayout, CuBlas.CUDA_R_16BF, (ulong)(transposeA ? m : k), (ulong)(transposeA ? k : m), transposeA ? m : k),
                nameof(CuBlasLt.cublasLtMatrixLayoutCreate));
            CuBlas.Check(CuBlasLt.cublasLtMatrixLayoutCreate(out plan.CLayout, bf16Output ? CuBlas.CUDA_R_16BF : CuBlas.CUDA_R_32F, (ulong)n, (ulong)m, n),
                nameof(CuBlasLt.cublasLtMatrixLayoutCreate));

            CuBlas.Check(CuBlasLt.cublasLtMatmulPreferenceCreate(out var preference), nameof(CuBlasLt.cublasLtMatmulPreferenceCreate));
            try
            {
                var workspace = (ulong)LtWorkspaceBytes;
                CuBlas.Check(CuBlasLt.cublasLtMatmulPreferenceSetAttribute(preference, CuBlasLt.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(ulong)),
                    nameof(CuBlasLt.cublasLtMatmulPreferenceSetAttribute));
                CuBlasLt.HeuristicResult result;
                CuBlas.Check(CuBlasLt.cublasLtMatmulAlgoGetHeuristic(lt, plan.Desc, plan.ALayout, plan.BLayout, plan.CLayout, plan.CLayout, preference, 1, &result, out var found),
                    nameof(CuBlasLt.cublasLtMatmulAlgoGetHeuristic));
                if (found < 1)
                {
                    plan.Dispose();
                    ltPlans[key] = null;
                    return null;
                }

                plan.Algo = result;
            }
            finally
            {
                CuBlasLt.cublasLtMatmulPreferenceDestroy(preference);
            }
        }
        catch
        {
            plan.Dispose();
            throw;
        }

        ltPlans[key] = plan;
        return plan;
    }

    private static void SetDesc(nint desc, int attribute, int value) =>
        CuBlas.Check(CuBlasLt.cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(int)), nameof(CuBlasLt.cublasLtMatmulDescSetAttribute));

    /// <summary>The descriptors and algorithm of one cuBLASLt product shape.</summary>
    private sealed class LtPlan : IDisposable
    {
        public nint Desc;
        public nint ALayout;
        public nint BLayout;
        public nint CLayout;
        public CuBlasLt.HeuristicResult Algo;

        public void Dispose()
        {
            if (Desc != 0) { CuBlasLt.cublasLtMatmulDescDestroy(Desc); }
            if (ALayout != 0) { CuBlasLt.cublasLtMatrixLayoutDestroy(ALayout); }
            if (BLayout != 0) { CuBlasLt.cublasLtMatrixLayoutDestroy(BLayout); }
            if (CLayout != 0) { CuBlasLt.cublasLtMatrixLayoutDestroy(CLayout); }
            Desc = ALayout = BLayout = CLayout = 0;
        }
    }

    // ---- Attention -------------------------------------------------------------------------

    /// <summary>
    /// The attention kernel variant used when a call names none: <see cref="AttentionKernelVariant.Hopper"/> on compute
    /// capability 9.0 (calls it cannot run fall back to the mma.sync kernel), else <see cref="AttentionKernelVariant.Default"/>.
    /// </summary>
    public AttentionKernelVariant AttentionVariant { get; set; }

    /// <summary>Whether the device has the sm_90a instructions the Hopper attention kernel uses (compute capability 9.0).</summary>
    public static bool HasWgmma(CudaDeviceInfo device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.ComputeMajor == 9 && device.ComputeMinor == 0;
    }

    /// <summary>
    /// Whether the Hopper (wgmma) kernel runs this call on <paramref name="device"/>: compute capability 9.0, head dim 64,
    /// BF16 or FP16, and dense or a block size of 128 (one query block = one CTA of two 64-row warpgroups). Other calls
    /// of a <see cref="AttentionKernelVariant.Wgmma"/> variant run the mma.sync kernel.
    /// </summary>
    public static bool SupportsWgmmaAttention(CudaDeviceInfo device, AttentionGeometry geometry, CsrBlockLayout? layout, CudaElementType type, out string? why)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(geometry);
        why = !HasWgmma(device) ? $"compute capability {device.ComputeMajor}.{device.ComputeMinor} (wgmma needs 9.0)"
            : geometry.HeadDim != 64 ? $"head dim {geometry.HeadDim} (supported: 64)"
            : layout is not null && layout.BlockSize != 128 ? $"block size {layout.BlockSize} (supported: 128, or dense)"
            : type == CudaElementType.Float32 ? "FP32 tensors (BF16 or FP16 only)"
            : null;
        return why is null;
    }

    /// <summary>
    /// Whether <see cref="Attention"/> runs this geometry and layout on the GPU: on the tensor-core kernel
    /// (head dim 16/32/64/128, block size 16/32/64/128, 16-byte rows) or else on the small-head kernel
    /// (head dim up to 64, block size up to 256).
    /// </summary>
    public static bool SupportsAttention(AttentionGeometry geometry, CsrBlockLayout? layout, out string? why)
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

    /// <summary>Whether the tensor-core kernel (attention.cu) takes this call.</summary>
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

    /// <summary>
    /// Longest key-block list one CTA takes: twice the mean row length (at least 4), so rows of a
    /// balanced layout (window, dense) are never split and a BigBird global row is spread over a few CTAs.
    /// </summary>
    public static int SplitThreshold(CsrBlockLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var rows = layout.Offsets.Length - 1;
        var mean = rows == 0 ? 0 : (double)layout.Indices.Length / rows;
        return Math.Max(4, (int)Math.Ceiling(2 * mean));
    }

    /// <summary>
    /// The work items of a layout for <paramref name="heads"/> heads: (row, start, end, slot) with
    /// slot −1 for rows done in one piece; null when no row is longer than <see cref="SplitThreshold"/>.
    /// </summary>
    public static (int[] Work, int[] Combine, int Slots)? PlanSplits(CsrBlockLayout layout, int heads)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var cap = SplitThreshold(layout);
        var nqb = layout.NumQueryBlocks;
        var longest = 0;
        for (var r = 0; r < layout.Offsets.Length - 1; r++)
        {
            longest = Math.Max(longest, layout.Offsets[r + 1] - layout.Offsets[r]);
        }

        if (longest <= cap)
        {
            return null;
        }

        var split = new List<int>();
        var whole = new List<int>();
        var combine = new List<int>();
        var slots = 0;
        for (var b = 0; b < layout.Batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var qb = 0; qb < nqb; qb++)
                {
                    var lr = ((b * layout.Heads) + (layout.Heads == 1 ? 0 : h)) * nqb + qb;
                    int start = layout.Offsets[lr], end = layout.Offsets[lr + 1];
                    var row = ((b * heads) + h) * nqb + qb;
                    if (end - start <= cap)
                    {
                        whole.AddRange([row, start, end, -1]);
                        continue;
                    }

                    var parts = (end - start + cap - 1) / cap;
                    combine.AddRange([row, slots, parts]);
                    for (var i = 0; i < parts; i++)
                    {
                        var s0 = start + (int)((long)(end - start) * i / parts);
                        var s1 = start + (int)((long)(end - start) * (i + 1) / parts);
                        split.AddRange([row, s0, s1, slots++]);
                    }
                }
            }
        }

        // The pieces of split rows go first so that the long work starts early.
        return ([.. split, .. whole], [.. combine], slots);
    }

    /// <summary>
    /// The work list the attention kernels take for a layout: <see cref="PlanSplits"/>'s, or, where no row is split
    /// but the rows differ in length, one item per row; either way the whole rows longest first (stable), so that the
    /// last wave of CTAs holds the shortest rows (measured: window 50% at T 16384, 0.70 → 0.65 ms on the wgmma
    /// kernel). Null when every row has the same length: the grid then walks the rows in order.
    /// </summary>
    public static (int[] Work, int[] Combine, int Slots)? PlanWork(CsrBlockLayout layout, int heads)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var (work, combine, slots) = PlanSplits(layout, heads) ?? (WholeRows(layout, heads), [], 0);
        int shortest = int.MaxValue, longest = 0;
        for (var r = 0; r < layout.Offsets.Length - 1; r++)
        {
            var length = layout.Offsets[r + 1] - layout.Offsets[r];
            shortest = Math.Min(shortest, length);
            longest = Math.Max(longest, length);
        }

        if (slots == 0 && shortest == longest)
        {
            return null;
        }

        var firstWhole = 0;
        while (firstWhole < work.Length && work[firstWhole + 3] >= 0)
        {
            firstWhole += 4;
        }

        var whole = Enumerable.Range(0, (work.Length - firstWhole) / 4)
            .Select(i => work.AsSpan(firstWhole + (4 * i), 4).ToArray())
            .OrderByDescending(w => w[2] - w[1])
            .SelectMany(w => w);
        return ([.. work.AsSpan(0, firstWhole).ToArray(), .. whole], combine, slots);
    }

    private static int[] WholeRows(CsrBlockLayout layout, int heads)
    {
        var nqb = layout.NumQueryBlocks;
        var work = new int[layout.Batch * heads * nqb * 4];
        var i = 0;
        for (var b = 0; b < layout.Batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var qb = 0; qb < nqb; qb++)
                {
                    var lr = ((b * layout.Heads) + (layout.Heads == 1 ? 0 : h)) * nqb + qb;
                    work[i++] = ((b * heads) + h) * nqb + qb;
                    work[i++] = layout.Offsets[lr];
                    work[i++] = layout.Offsets[lr + 1];
                    work[i++] = -1;
                }
            }
        }

        return work;
    }

    private SplitPlan? PlanFor(DeviceBlockLayout layout, int heads)
    {
        if (layout.Plans.TryGetValue(heads, out var cached))
        {
            return cached;
        }

        SplitPlan? plan = null;
        if (PlanWork(layout.Layout, heads) is { } p)
        {
            var work = Allocate(p.Work.Length * 4L, MemoryCategory.Workspace);
            var combine = Allocate(Math.Max(1, p.Combine.Length) * 4L, MemoryCategory.Workspace);
            Upload<int>(p.Work, work);
            Upload<int>(p.Combine, combine);
            plan = new SplitPlan(work, p.Work.Length / 4, combine, p.Combine.Length / 3, p.Slots);
        }

        layout.Plans[heads] = plan;
        return plan;
    }

    /// <summary>Uploads a layout (workspace memory) for <see cref="Attention"/>.</summary>
    public DeviceBlockLayout Upload(CsrBlockLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var offsets = Allocate(layout.Offsets.Length * 4L, MemoryCategory.Workspace);
        var indices = Allocate(Math.Max(1, layout.Indices.Length) * 4L, MemoryCategory.Workspace);
        Upload<int>(layout.Offsets, offsets);
        if (layout.Indices.Length > 0)
        {
            Upload<int>(layout.Indices, indices);
        }

        return new DeviceBlockLayout(layout, offsets, indices);
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
    private static AttentionParams AttentionParamsFor(CudaBuffer q, CudaBuffer k, CudaBuffer v, CudaBuffer o, AttentionGeometry geometry,
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
    /// <paramref name="layout"/> is null, else only the listed key blocks per query block.
    /// <paramref name="seqLens"/> (int32 per sequence, optional) masks keys past each valid length
    /// and zeroes the outputs of queries past it.
    /// </summary>
    public void Attention(CudaBuffer q, CudaBuffer k, CudaBuffer v, CudaBuffer o, AttentionGeometry geometry,
        DeviceBlockLayout? layout = null, CudaBuffer? seqLens = null, CudaElementType type = CudaElementType.BFloat16,
        AttentionKernelVariant? variant = null)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        if (!SupportsAttention(geometry, layout?.Layout, out var why))
        {
            throw new NotSupportedException("CUDA attention does not support this call: " + why);
        }

        if (type == CudaElementType.Float32)
        {
            throw new NotSupportedException("CUDA attention takes BF16 or FP16 tensors; convert FP32 first.");
        }

        if (!TensorCoreKernelTakes(geometry, layout?.Layout, out _))
        {
            SmallHeadAttention(q, k, v, o, geometry, layout, seqLens, type);
            return;
        }

        var queryTile = layout?.Layout.BlockSize ?? 128;
        var chosen = variant ?? AttentionVariant;
        var wide = chosen.WideKeyTiles && !chosen.Pipelined;
        var keyTile = Math.Min(chosen.Pipelined ? 32 : wide ? 128 : DenseTile, queryTile);
        var stages = chosen.Pipelined ? 3 : chosen.Stages;
        if (chosen.RowsPerWarp is not (16 or 32))
        {
            throw new ArgumentException($"variant.RowsPerWarp: expected 16 or 32, got {chosen.RowsPerWarp}.", nameof(variant));
        }

        if (stages is not (2 or 3))
        {
            throw new ArgumentException($"variant.Stages: expected 2 or 3, got {chosen.Stages}.", nameof(variant));
        }

        // Two 16-row tiles per warp would spill registers at head dim 128; a 16-row block has one.
        var mTiles = geometry.HeadDim == 128 || queryTile < 32 ? 1 : chosen.RowsPerWarp / 16;
        var fastExp = chosen.FastExp && !chosen.Pipelined && type == CudaElementType.BFloat16;
        var defines = new[]
        {
            $"HEAD_DIM={geometry.HeadDim}", $"QUERY_TILE={queryTile}", $"KEY_TILE={keyTile}", $"USE_FP16={(type == CudaElementType.Float16 ? 1 : 0)}",
            $"M_TILES={mTiles}", $"FAST_EXP={(fastExp ? 1 : 0)}", $"MIN_BLOCKS={Math.Max(1, chosen.MinBlocksPerMultiprocessor)}", $"STAGES={stages}", $"PIPELINE={(chosen.Pipelined ? 1 : 0)}", $"Q_IN_SMEM={(wide ? 1 : 0)}",
        };
        context.MakeCurrent();
        nint f;
        uint threads;
        int sharedBytes;
        if (chosen.Wgmma && SupportsWgmmaAttention(Device, geometry, layout?.Layout, type, out _))
        {
            (f, threads, sharedBytes, queryTile) = layout is null && chosen.WarpSpecializedDense
                ? WgmmaDenseFunction(type)
                : WgmmaAttentionFunction(chosen, type);
        }
        else
        {
            sharedBytes = ((queryTile * geometry.HeadDim) + (2 * stages * keyTile * geometry.HeadDim)) * 2;
            f = AttentionFunction("attention.cu", "attention_fwd", defines, sharedBytes);
            threads = (uint)(queryTile / (16 * mTiles) * 32);
        }

        var p = AttentionParamsFor(q, k, v, o, geometry, layout, seqLens, denseBlock: DenseTile, queryTile);
        void** args = stackalloc void*[] { &p };
        var plan = layout is null ? null : PlanFor(layout, geometry.Heads);
        if (plan is null)
        {
            Launch(f, (uint)CsrBlockLayout.BlockCount(geometry.SeqLen, queryTile), (uint)geometry.Heads, (uint)geometry.Batch,
                threads, (uint)sharedBytes, args, "attention_fwd");
            return;
        }

        // Both kernels write split rows' partial results in the same layout ([slot][query tile][head dim]), so
        // attention.cu's combine kernel merges either.
        if (plan.Slots == 0)
        {
            p.Work = plan.Work.Pointer;
            Launch(f, (uint)plan.WorkItems, 1, 1, threads, (uint)sharedBytes, args, "attention_fwd");
            return;
        }

        using var partialO = Allocate((long)plan.Slots * queryTile * geometry.HeadDim * 4, MemoryCategory.Workspace);
        using var partialML = Allocate((long)plan.Slots * queryTile * 2 * 4, MemoryCategory.Workspace);
        p.Work = plan.Work.Pointer;
        p.PartialO = partialO.Pointer;
        p.PartialML = partialML.Pointer;
        Launch(f, (uint)plan.WorkItems, 1, 1, threads, (uint)sharedBytes, args, "attention_fwd");
        var combine = Function("attention.cu", "attention_combine", defines);
        ulong rows = plan.Combine.Pointer;
        void** combineArgs = stackalloc void*[] { &p, &rows };
        Launch(combine, (uint)plan.SplitRows, 1, 1, 256, 0, combineArgs, "attention_combine");
    }

    /// <summary>Defines of the Hopper kernel for a variant: head dim 64, 128-row query tiles, 128-key tiles.</summary>
    private static string[] WgmmaDefines(AttentionKernelVariant variant, CudaElementType type)
    {
        if (variant.Stages is not (2 or 3))
        {
            throw new ArgumentException($"variant.Stages: expected 2 or 3 for the wgmma kernel, got {variant.Stages}.", nameof(variant));
        }

        if (variant.MinBlocksPerMultiprocessor is not (1 or 2) || (variant.MinBlocksPerMultiprocessor == 2 && variant.Stages != 2))
        {
            throw new ArgumentException(
                $"variant.MinBlocksPerMultiprocessor: expected 1, or 2 with 2 stages (two CTAs of three stages exceed shared memory), got {variant.MinBlocksPerMultiprocessor} with {variant.Stages} stages.",
                nameof(variant));
        }

        return
        [
            "HEAD_DIM=64", "QUERY_TILE=128", "KEY_TILE=128", $"STAGES={variant.Stages}", $"MIN_BLOCKS={variant.MinBlocksPerMultiprocessor}",
            $"USE_FP16={(type == CudaElementType.Float16 ? 1 : 0)}", $"FAST_EXP={(variant.FastExp && type == CudaElementType.BFloat16 ? 1 : 0)}",
        ];
    }

    private (nint Function, uint Threads, int SharedBytes, int QueryTile) WgmmaAttentionFunction(AttentionKernelVariant variant, CudaElementType type)
    {
        // Q tile, K and V ring, and 1 KiB for the kernel to align the window to the 1024-byte swizzle atom.
        var sharedBytes = (128 * 128) + (variant.Stages * 2 * 128 * 128) + 1024;
        return (AttentionFunction("attention_sm90.cu", "attention_fwd_sm90", WgmmaDefines(variant, type), sharedBytes), 256, sharedBytes, 128);
    }

    /// <summary>Defines of the warp-specialised dense build: 192-query tiles (three consumer warpgroups), four stages.</summary>
    private static string[] WgmmaDenseDefines(CudaElementType type) =>
    [
        "HEAD_DIM=64", "QUERY_TILE=192", "KEY_TILE=128", "STAGES=4", "MIN_BLOCKS=1", "OVERLAP=1", "PRODUCER=1", "INPLACE_P=1",
        $"USE_FP16={(type == CudaElementType.Float16 ? 1 : 0)}",
    ];

    private (nint Function, uint Threads, int SharedBytes, int QueryTile) WgmmaDenseFunction(CudaElementType type)
    {
        // Q tile, K and V ring, the ring's mbarriers, and 1 KiB for the 1024-byte alignment; a producer and three consumer warpgroups.
        const int queryTile = 192, stages = 4;
        var sharedBytes = (queryTile * 128) + (stages * 2 * 128 * 128) + 256 + 1024;
        return (AttentionFunction("attention_sm90.cu", "attention_fwd_sm90", WgmmaDenseDefines(type), sharedBytes), 512, sharedBytes, queryTile);
    }

    private nint AttentionFunction(string sourceFile, string function, string[] defines, int sharedBytes)
    {
        var f = Function(sourceFile, function, defines);
        CudaDriver.Check(
            CudaDriver.cuFuncSetAttribute(f, CudaDriver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes),
            nameof(CudaDriver.cuFuncSetAttribute));
        return f;
    }

    // ---- Block selection (block-topk) ------------------------------------------------------

    /// <summary>
    /// The `block-topk` layout of model-format.md, selected on the GPU from BF16 q and k: pooled block
    /// means, pooled scores q̄·k̄/√d, and per (batch, head, query block) the block itself plus the K − 1
    /// other blocks with the largest score (ties: lower kb), K = clamp(round((1 − s)·n), 1, n). The
    /// selection comes back to the host (B·H·n·K integers) as a checked CSR layout. Every sequence is
    /// taken as T long.
    /// </summary>
    public CsrBlockLayout SelectBlockTopK(CudaBuffer q, CudaBuffer k, AttentionGeometry geometry, int blockSize, double sparsity)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        var n = CsrBlockLayout.BlockCount(geometry.SeqLen, blockSize);
        var budget = CsrBlockLayout.Budget(sparsity, n);
        var rows = geometry.Batch * geometry.Heads * n;
        context.MakeCurrent();
        using var qPooled = Allocate((long)rows * geometry.HeadDim * 4, MemoryCategory.Workspace);
        using var kPooled = Allocate((long)rows * geometry.HeadDim * 4, MemoryCategory.Workspace);
        using var selected = Allocate((long)rows * budget * 4, MemoryCategory.Workspace);
        var pool = Function("selection.cu", "pool_blocks_bf16");
        int heads = geometry.Heads, seqLen = geometry.SeqLen, headDim = geometry.HeadDim;
        ulong noLens = 0;
        ulong px = 0, po = 0;
        long sb = 0, sh = 0, st = 0;
        void** args = stackalloc void*[] { &px, &sb, &sh, &st, &po, &heads, &seqLen, &noLens, &blockSize, &headDim };
        foreach (var (x, strides, pooled) in new[] { (q, geometry.Q, qPooled), (k, geometry.K, kPooled) })
        {
            px = x.Pointer;
            po = pooled.Pointer;
            (sb, sh, st) = (strides.Batch, strides.Head, strides.Token);
            Launch(pool, (uint)n, (uint)heads, (uint)geometry.Batch, (uint)Math.Min(128, headDim), 0, args, "pool_blocks_bf16");
        }

        var select = Function("selection.cu", "block_topk_select");
        ulong pq = qPooled.Pointer, pk = kPooled.Pointer, ps = selected.Pointer;
        var scale = (float)(1 / Math.Sqrt(headDim));
        void** selectArgs = stackalloc void*[] { &pq, &pk, &ps, &heads, &headDim, &budget, &scale };
        Launch(select, (uint)n, (uint)heads, (uint)geometry.Batch, 32, (uint)(n * 4), selectArgs, "block_topk_select");

        var picked = new int[rows * budget];
        Download<int>(selected, picked);
        var offsets = new int[rows + 1];
        for (var r = 0; r < rows; r++)
        {
            Array.Sort(picked, r * budget, budget);
            offsets[r + 1] = (r + 1) * budget;
        }

        return new CsrBlockLayout(geometry.Batch, geometry.Heads, n, n, blockSize, offsets, picked);
    }

    // ---- Timing ----------------------------------------------------------------------------

    /// <summary>Milliseconds of device time the queued work of <paramref name="work"/> takes, measured with events.</summary>
    public float TimeMilliseconds(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        context.MakeCurrent();
        var ctx = context.DangerousGetHandle();
        CudaDriver.Check(CudaDriver.cuEventCreate(out var s, CudaDriver.CU_EVENT_DEFAULT), nameof(CudaDriver.cuEventCreate));
        using var start = new CudaEventHandle(s, ctx);
        CudaDriver.Check(CudaDriver.cuEventCreate(out var e, CudaDriver.CU_EVENT_DEFAULT), nameof(CudaDriver.cuEventCreate));
        using var end = new CudaEventHandle(e, ctx);
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
        sb.Append(Device.Name).Append(", sm_").Append(Device.ComputeMajor).Append(Device.ComputeMinor)
          .Append(", ").Append(Device.MultiprocessorCount).Append(" SMs, ")
          .Append(Device.TotalMemoryBytes >> 20).Append(" MiB, L2 ").Append(Device.L2CacheBytes >> 20).Append(" MiB, driver ")
          .Append(Device.DriverVersion).Append(", NVRTC ").Append(Device.NvrtcVersion).Append(", cuBLAS ").Append(Device.CublasVersion);
        return sb.ToString();
    }

    public void Dispose()
    {
        lock (gate)
        {
            context.MakeCurrent();
            CudaDriver.cuStreamSynchronize(Stream);
            foreach (var plan in ltPlans.Values)
            {
                plan?.Dispose();
            }

            ltPlans.Clear();
            lock (stagingGate)
            {
                staging?.Dispose();
                staging = null;
            }

            ltWorkspace?.Dispose();
            ltHandle?.Dispose();
            Memory.Dispose();
            foreach (var m in modules.Values)
            {
                m.Dispose();
            }

            modules.Clear();
            functions.Clear();
            cublas.Dispose();
            stream.Dispose();
            context.Dispose();
        }
    }
}

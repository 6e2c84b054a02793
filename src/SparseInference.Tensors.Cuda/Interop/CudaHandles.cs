using Microsoft.Win32.SafeHandles;

namespace SparseInference.Tensors.Cuda.Interop;

// Owned native objects. Each release makes the owning context current first, because the
// finalizer thread has no current context of its own.

/// <summary>A retained primary context of one device.</summary>
internal sealed class CudaPrimaryContextHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public CudaPrimaryContextHandle(nint context, int device) : base(ownsHandle: true)
    {
        SetHandle(context);
        Device = device;
    }

    public int Device { get; }

    /// <summary>Makes this context current on the calling thread.</summary>
    public void MakeCurrent() => CudaDriver.Check(CudaDriver.cuCtxSetCurrent(handle), nameof(CudaDriver.cuCtxSetCurrent));

    protected override bool ReleaseHandle() => CudaDriver.cuDevicePrimaryCtxRelease(Device) == CudaDriver.CUDA_SUCCESS;
}

/// <summary>A CUstream.</summary>
internal sealed class CudaStreamHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly nint context;

    public CudaStreamHandle(nint stream, nint context) : base(ownsHandle: true)
    {
        SetHandle(stream);
        this.context = context;
    }

    protected override bool ReleaseHandle()
    {
        CudaDriver.cuCtxSetCurrent(context);
        return CudaDriver.cuStreamDestroy(handle) == CudaDriver.CUDA_SUCCESS;
    }
}

/// <summary>A CUevent.</summary>
internal sealed class CudaEventHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly nint context;

    public CudaEventHandle(nint evt, nint context) : base(ownsHandle: true)
    {
        SetHandle(evt);
        this.context = context;
    }

    protected override bool ReleaseHandle()
    {
        CudaDriver.cuCtxSetCurrent(context);
        return CudaDriver.cuEventDestroy(handle) == CudaDriver.CUDA_SUCCESS;
    }
}

/// <summary>A loaded CUmodule.</summary>
internal sealed class CudaModuleHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly nint context;

    public CudaModuleHandle(nint module, nint context) : base(ownsHandle: true)
    {
        SetHandle(module);
        this.context = context;
    }

    protected override bool ReleaseHandle()
    {
        CudaDriver.cuCtxSetCurrent(context);
        return CudaDriver.cuModuleUnload(handle) == CudaDriver.CUDA_SUCCESS;
    }
}

/// <summary>One cuMemAlloc allocation.</summary>
internal sealed class CudaDeviceMemoryHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly nint context;

    public CudaDeviceMemoryHandle(ulong pointer, long bytes, nint context) : base(ownsHandle: true)
    {
        SetHandle((nint)pointer);
        Bytes = bytes;
        this.context = context;
    }

    public ulong Pointer => (ulong)handle;

    public long Bytes { get; }

    /// <summary>The recorded graph this block belongs to (set and read under the pool's lock), or null.</summary>
    public Memory.DeviceMemoryPool.Reservation? Reservation { get; set; }

    protected override bool ReleaseHandle()
    {
        CudaDriver.cuCtxSetCurrent(context);
        return CudaDriver.cuMemFree((ulong)handle) == CudaDriver.CUDA_SUCCESS;
    }
}

/// <summary>Page-locked host memory from cuMemHostAlloc, for asynchronous copies.</summary>
internal sealed class CudaPinnedHostMemoryHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly nint context;

    public CudaPinnedHostMemoryHandle(nint pointer, long bytes, nint context) : base(ownsHandle: true)
    {
        SetHandle(pointer);
        Bytes = bytes;
        this.context = context;
    }

    public nint Pointer => handle;

    public long Bytes { get; }

    protected override bool ReleaseHandle()
    {
        CudaDriver.cuCtxSetCurrent(context);
        return CudaDriver.cuMemFreeHost(handle) == CudaDriver.CUDA_SUCCESS;
    }
}

/// <summary>An instantiated CUgraphExec.</summary>
internal sealed class CudaGraphExecHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly nint context;

    public CudaGraphExecHandle(nint graphExec, nint context) : base(ownsHandle: true)
    {
        SetHandle(graphExec);
        this.context = context;
    }

    protected override bool ReleaseHandle()
    {
        CudaDriver.cuCtxSetCurrent(context);
        return CudaDriver.cuGraphExecDestroy(handle) == CudaDriver.CUDA_SUCCESS;
    }
}

/// <summary>A cublasHandle_t.</summary>
internal sealed class CublasHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private readonly nint context;

    public CublasHandle(nint cublas, nint context) : base(ownsHandle: true)
    {
        SetHandle(cublas);
        this.context = context;
    }

    protected override bool ReleaseHandle()
    {
        CudaDriver.cuCtxSetCurrent(context);
        return CuBlas.cublasDestroy_v2(handle) == 0;
    }
}

/// <summary>A cublasLtHandle_t.</summary>
internal sealed class CublasLtHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public CublasLtHandle(nint handle) : base(ownsHandle: true)
    {
        SetHandle(handle);
    }

    protected override bool ReleaseHandle() => CuBlasLt.cublasLtDestroy(handle) == 0;
}

using SparseInference.Tensors.Cuda.Interop;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// A forward recorded as a CUDA graph: a copy from page-locked input staging, the ops, a copy to page-locked output
/// staging. It owns what its replays touch beyond the caller's tensors: the pool blocks rented while it was recorded
/// (<see cref="DeviceMemoryPool.Reservation"/>) and the cached layouts and lengths it read.
/// </summary>
internal sealed unsafe class CudaRecordedForward : IRecordedForward
{
    private readonly CudaDevice gpu;
    private readonly CudaGraphExecHandle graph;
    private readonly CudaPinnedHostMemoryHandle input;
    private readonly CudaPinnedHostMemoryHandle output;
    private readonly int inputBytes;
    private readonly int outputBytes;
    private readonly DeviceMemoryPool.Reservation reservation;
    private readonly IReadOnlyList<IRetained> retained;
    private readonly Action onDispose;
    private int disposed;

    public CudaRecordedForward(CudaDevice gpu, CudaGraphExecHandle graph, CudaPinnedHostMemoryHandle input, int inputBytes,
        CudaPinnedHostMemoryHandle output, int outputBytes, DeviceMemoryPool.Reservation reservation, IReadOnlyList<IRetained> retained,
        Action onDispose)
    {
        this.gpu = gpu;
        this.graph = graph;
        this.input = input;
        this.inputBytes = inputBytes;
        this.output = output;
        this.outputBytes = outputBytes;
        this.reservation = reservation;
        this.retained = retained;
        this.onDispose = onDispose;
    }

    public Span<byte> Input => new((void*)input.Pointer, inputBytes);

    public ReadOnlySpan<byte> Output => new((void*)output.Pointer, outputBytes);

    public void Run()
    {
        ObjectDisposedException.ThrowIf(disposed != 0, this);
        gpu.Launch(graph);
        gpu.Synchronize();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        try
        {
            // A replay still in flight (one whose wait failed) must not find its memory handed to another owner.
            gpu.Synchronize();
        }
        catch (CudaException)
        {
            // The device is faulted; its memory goes with it.
        }

        graph.Dispose();
        reservation.Dispose();
        foreach (var r in retained)
        {
            r.Release();
        }

        input.Dispose();
        output.Dispose();
        onDispose();
    }
}

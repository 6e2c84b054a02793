using System.Runtime.ExceptionServices;
using SparseInference.Tensors.Cuda.Interop;
using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

// Recorded forwards: a forward's ops captured as a CUDA graph and replayed as one launch.
public sealed partial class CudaComputeBackend
{
    // ---- Recorded forwards (CUDA graphs) -------------------------------------------------------

    /// <summary>What a recording in progress collects besides the graph.</summary>
    private sealed class Recording
    {
        /// <summary>Tensors given a BF16 copy while recording: if the recording fails, those copies hold no values.</summary>
        public List<CudaTensorBuffer> NewCopies { get; } = [];

        /// <summary>Cached layouts and lengths the recorded ops read: the recording keeps them alive.</summary>
        public List<IRetained> Retained { get; } = [];
    }

    /// <summary>A cache entry, retained for the recording in progress (the recording releases it when disposed).</summary>
    private Shared<T> Retained<T>(Shared<T> entry)
        where T : IDisposable
    {
        if (recording is not null && !recording.Retained.Contains(entry))
        {
            recording.Retained.Add(entry.Retain());
        }

        return entry;
    }

    /// <inheritdoc/>
    public IRecordedForward? Record(Tensor input, Tensor output, Action forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        RawView(input, nameof(input));
        RawView(output, nameof(output));
        if (recording is not null)
        {
            throw new InvalidOperationException("A forward is already being recorded on this backend.");
        }

        var inputBytes = checked((int)input.SizeInBytes);
        var outputBytes = checked((int)output.SizeInBytes);
        var pinnedIn = Gpu.AllocatePinned(inputBytes);
        var pinnedOut = Gpu.AllocatePinned(outputBytes);

        // Earlier work is not part of the recording; a fault of it surfaces here rather than as a failed recording.
        Gpu.Synchronize();
        var scope = new Recording();
        var reservation = Gpu.Memory.BeginReservation();
        CudaGraphExecHandle? graph = null;
        string? captureFailure = null;
        Exception? error = null;
        recording = scope;
        try
        {
            Gpu.BeginCapture();
            try
            {
                Gpu.QueueCopyFromPinned(pinnedIn, Output(input, nameof(input)), inputBytes);
                forward();
                Gpu.QueueCopyToPinned(View(output, nameof(output)), pinnedOut, outputBytes);
            }
            catch (Exception ex)
            {
                error = ex;
            }
            finally
            {
                graph = Gpu.EndCapture(out captureFailure);
            }
        }
        catch (Exception ex) when (error is null)
        {
            error = ex;
        }
        finally
        {
            recording = null;
            Gpu.Memory.EndReservation(reservation);
        }

        if (graph is not null && error is null)
        {
            Interlocked.Increment(ref liveRecordings);
            return new CudaRecordedForward(Gpu, graph, pinnedIn, inputBytes, pinnedOut, outputBytes, reservation, scope.Retained,
                () => Interlocked.Decrement(ref liveRecordings));
        }

        // Nothing ran: copies made while recording hold no values, and what the recording reserved goes back.
        graph?.Dispose();
        foreach (var buffer in scope.NewCopies)
        {
            buffer.DropCopy();
        }

        foreach (var entry in scope.Retained)
        {
            entry.Release();
        }

        reservation.Dispose();
        pinnedIn.Dispose();
        pinnedOut.Dispose();
        if (error is not null && !(error is CudaException { Code: >= CudaDriver.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and <= CudaDriver.CUDA_ERROR_STREAM_CAPTURE_LAST }))
        {
            ExceptionDispatchInfo.Throw(error);
        }

        LastRecordingFailure = error?.Message ?? captureFailure;
        return null;
    }

    private int liveRecordings;

    /// <summary>Recorded forwards made on this backend and not yet disposed.</summary>
    public int RecordedForwards => Volatile.Read(ref liveRecordings);

    /// <summary>Why the last <see cref="Record"/> that returned null failed (for logs and the notes).</summary>
    public string? LastRecordingFailure { get; private set; }
}

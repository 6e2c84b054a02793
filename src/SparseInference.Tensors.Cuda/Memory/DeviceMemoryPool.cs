using SparseInference.Tensors.Cuda.Interop;

namespace SparseInference.Tensors.Cuda.Memory;

/// <summary>Bytes by use, for metrics.</summary>
/// <param name="InUseBytes">Rented and not yet returned.</param>
/// <param name="ReservedBytes">Held from the driver, rented or cached.</param>
/// <param name="WeightBytes">Rented as weights.</param>
/// <param name="WorkspaceBytes">Rented as workspace.</param>
/// <param name="ActivationBytes">Rented as activations.</param>
public sealed record DeviceMemoryStatistics(long InUseBytes, long ReservedBytes, long WeightBytes, long WorkspaceBytes, long ActivationBytes);

/// <summary>
/// A simple caching allocator: blocks are rounded up to size classes (powers of two up to 2 MiB,
/// then multiples of 2 MiB) and kept on a free list per class when returned, so a steady forward
/// pass stops calling cuMemAlloc/cuMemFree (both synchronise the device).
/// <para>
/// While a graph is recorded (<see cref="BeginReservation"/>), every block rented belongs to that recording: the graph
/// writes it on every replay, so a block returned while the recording lives is parked with it (and reused only by the
/// same recording) instead of going back to the free lists, where another owner could be handed memory a replay then
/// overwrites. <see cref="Reservation.Dispose"/> gives the parked blocks back.
/// </para>
/// </summary>
public sealed class DeviceMemoryPool : IDisposable
{
    private const long LargeGranularity = 2L << 20;
    private readonly nint context;
    private readonly Lock gate = new();
    private readonly Dictionary<long, Stack<CudaDeviceMemoryHandle>> free = [];
    private readonly long[] rentedByCategory = new long[3];
    private long inUse;
    private long reserved;
    private bool disposed;
    private Reservation? recording;

    internal DeviceMemoryPool(nint context)
    {
        this.context = context;
    }

    /// <summary>The size class a request lands in.</summary>
    public static long SizeClass(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        if (bytes >= LargeGranularity)
        {
            return (bytes + LargeGranularity - 1) / LargeGranularity * LargeGranularity;
        }

        long size = 256;
        while (size < bytes)
        {
            size <<= 1;
        }

        return size;
    }

    public DeviceMemoryStatistics Statistics
    {
        get
        {
            lock (gate)
            {
                return new DeviceMemoryStatistics(inUse, reserved,
                    rentedByCategory[(int)MemoryCategory.Weights],
                    rentedByCategory[(int)MemoryCategory.Workspace],
                    rentedByCategory[(int)MemoryCategory.Activations]);
            }
        }
    }

    /// <summary>Rents at least <paramref name="bytes"/> bytes of device memory.</summary>
    public CudaBuffer Rent(long bytes, MemoryCategory category)
    {
        var size = SizeClass(bytes);
        CudaDeviceMemoryHandle? block = null;
        Reservation? owner;
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            owner = recording;
            block = owner?.TakeParked(size);
            if (block is null && free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                block = stack.Pop();
            }
        }

        if (block is null)
        {
            var result = CudaDriver.cuMemAlloc(out var pointer, (nuint)size);
            if (result != CudaDriver.CUDA_SUCCESS)
            {
                // Give cached blocks back to the driver once, then try again.
                Trim();
                result = CudaDriver.cuMemAlloc(out pointer, (nuint)size);
            }

            CudaDriver.Check(result, $"{nameof(CudaDriver.cuMemAlloc)}({size} bytes)");
            block = new CudaDeviceMemoryHandle(pointer, size, context);
            lock (gate)
            {
                reserved += size;
            }
        }

        lock (gate)
        {
            inUse += size;
            rentedByCategory[(int)category] += size;
            if (owner is not null)
            {
                block.Reservation = owner;
            }
        }

        return new CudaBuffer(this, block, bytes, category);
    }

    /// <summary>
    /// Starts a reservation: every block rented until <see cref="EndReservation"/> belongs to it (one at a time; the caller
    /// serialises device work, as for a stream capture).
    /// </summary>
    internal Reservation BeginReservation()
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (recording is not null)
            {
                throw new InvalidOperationException("A graph is already being recorded on this device.");
            }

            return recording = new Reservation(this);
        }
    }

    /// <summary>Blocks rented from now on are the pool's again; those of <paramref name="reservation"/> stay its own.</summary>
    internal void EndReservation(Reservation reservation)
    {
        lock (gate)
        {
            if (ReferenceEquals(recording, reservation))
            {
                recording = null;
            }
        }
    }

    /// <summary>Counts a rented buffer under <paramref name="category"/> from now on (memory found to hold weights after it was allocated).</summary>
    internal void Recategorize(CudaBuffer buffer, MemoryCategory category)
    {
        lock (gate)
        {
            if (buffer.Block is not { } block || buffer.Category == category)
            {
                return;
            }

            rentedByCategory[(int)buffer.Category] -= block.Bytes;
            rentedByCategory[(int)category] += block.Bytes;
            buffer.Category = category;
        }
    }

    internal void Return(CudaBuffer buffer)
    {
        var block = buffer.Block!;
        lock (gate)
        {
            inUse -= block.Bytes;
            rentedByCategory[(int)buffer.Category] -= block.Bytes;
            if (disposed)
            {
                reserved -= block.Bytes;
                block.Dispose();
                return;
            }

            if (block.Reservation is { } owner)
            {
                owner.Park(block);
                return;
            }

            Push(block);
        }
    }

    private void Push(CudaDeviceMemoryHandle block)
    {
        if (!free.TryGetValue(block.Bytes, out var stack))
        {
            free[block.Bytes] = stack = new Stack<CudaDeviceMemoryHandle>();
        }

        stack.Push(block);
    }

    /// <summary>
    /// The blocks a recorded graph reads and writes: rented while it was recorded, parked here when returned, and given
    /// back to the pool when the graph is dropped.
    /// </summary>
    internal sealed class Reservation(DeviceMemoryPool pool) : IDisposable
    {
        private readonly List<CudaDeviceMemoryHandle> parked = [];
        private bool released;

        /// <summary>Called under the pool's lock.</summary>
        internal CudaDeviceMemoryHandle? TakeParked(long size)
        {
            var i = parked.FindIndex(b => b.Bytes == size);
            if (i < 0)
            {
                return null;
            }

            var block = parked[i];
            parked.RemoveAt(i);
            return block;
        }

        /// <summary>Called under the pool's lock.</summary>
        internal void Park(CudaDeviceMemoryHandle block)
        {
            if (released)
            {
                block.Reservation = null;
                pool.Push(block);
                return;
            }

            parked.Add(block);
        }

        /// <summary>The parked blocks go back to the free lists; those still rented go there when their owner returns them.</summary>
        public void Dispose()
        {
            pool.EndReservation(this);
            lock (pool.gate)
            {
                if (released)
                {
                    return;
                }

                released = true;
                foreach (var block in parked)
                {
                    block.Reservation = null;
                    if (pool.disposed)
                    {
                        pool.reserved -= block.Bytes;
                        block.Dispose();
                    }
                    else
                    {
                        pool.Push(block);
                    }
                }

                parked.Clear();
            }
        }
    }

    /// <summary>Frees every cached (not rented) block.</summary>
    public void Trim()
    {
        lock (gate)
        {
            foreach (var stack in free.Values)
            {
                while (stack.Count > 0)
                {
                    var block = stack.Pop();
                    reserved -= block.Bytes;
                    block.Dispose();
                }
            }
        }
    }

    public void Dispose()
    {
        Trim();
        lock (gate)
        {
            disposed = true;
        }
    }
}

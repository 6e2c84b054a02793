using System.Diagnostics.Metrics;
using System.Globalization;
using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Admission;

/// <summary>
/// The bytes that requests in flight may hold at once (request bodies, parsed inputs, the forward's activations,
/// outputs and their serialisation). A request is admitted for its estimate before it touches the engine and holds
/// that share until its response is written; one that does not fit now is refused with <see cref="InferenceErrorKind.Overloaded"/>
/// (HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED), one that could never fit with
/// <see cref="InferenceErrorKind.ResourceExhausted"/> (HTTP 413, gRPC RESOURCE_EXHAUSTED). Whatever the batch size, and
/// whether the request is batched or runs alone, nothing is computed for a request that was not admitted.
/// </summary>
public sealed class InFlightMemoryBudget
{
    /// <summary>The wait suggested to a refused client: requests finish in milliseconds to seconds, and HTTP counts whole seconds.</summary>
    public const int RetryAfterSeconds = 1;

    private long _inUse;

    public InFlightMemoryBudget(long capacityBytes, IMeterFactory? meterFactory = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBytes, 1);
        CapacityBytes = capacityBytes;
        if (meterFactory is not null)
        {
            var meter = meterFactory.Create(ServingMetrics.MeterName);
            meter.CreateObservableGauge("sparseinference.memory.in_flight", () => InUseBytes, "By",
                "Bytes admitted for requests in flight (estimated inputs, activations and outputs).");
            meter.CreateObservableGauge("sparseinference.memory.in_flight_limit", () => CapacityBytes, "By",
                "The in-flight memory budget (SparseInference:Limits:InFlightMemoryBytes, or derived from the memory limit).");
        }
    }

    public long CapacityBytes { get; }

    public long InUseBytes => Volatile.Read(ref _inUse);

    /// <summary>Admits <paramref name="bytes"/> for <paramref name="what"/> (named in the refusal), or throws.</summary>
    /// <exception cref="InferenceException">Overloaded when the budget has no room now; ResourceExhausted when it never will.</exception>
    public Lease Admit(long bytes, string what)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes > CapacityBytes)
        {
            throw new InferenceException(
                InferenceErrorKind.ResourceExhausted,
                $"{what} needs about {Format(bytes)} of working memory, more than the server's whole in-flight budget of {Format(CapacityBytes)}; send fewer or shorter sequences per request.");
        }

        // A compare-and-swap loop rather than add-then-undo: the count itself never exceeds the budget.
        var current = Volatile.Read(ref _inUse);
        while (true)
        {
            if (current + bytes > CapacityBytes)
            {
                throw new InferenceException(
                    InferenceErrorKind.Overloaded,
                    $"{what} needs about {Format(bytes)} of working memory and requests in flight hold {Format(current)} of the {Format(CapacityBytes)} budget; retry after {RetryAfterSeconds} s.")
                {
                    RetryAfterSeconds = RetryAfterSeconds,
                };
            }

            var seen = Interlocked.CompareExchange(ref _inUse, current + bytes, current);
            if (seen == current)
            {
                return new Lease(this, bytes);
            }

            current = seen;
        }
    }

    internal static string Format(long bytes) => bytes >= 1 << 20
        ? (bytes / 1048576.0).ToString("0.#", CultureInfo.InvariantCulture) + " MiB"
        : bytes.ToString(CultureInfo.InvariantCulture) + " bytes";

    /// <summary>A share of the budget; disposing it (once or more) gives the bytes back.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly InFlightMemoryBudget _owner;
        private long _bytes;

        internal Lease(InFlightMemoryBudget owner, long bytes)
        {
            _owner = owner;
            _bytes = bytes;
        }

        public long Bytes => Volatile.Read(ref _bytes);

        public void Dispose()
        {
            var bytes = Interlocked.Exchange(ref _bytes, 0);
            if (bytes != 0)
            {
                Interlocked.Add(ref _owner._inUse, -bytes);
            }
        }
    }
}

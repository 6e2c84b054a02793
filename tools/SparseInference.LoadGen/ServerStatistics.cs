using System.Text.Json;

namespace SparseInference.LoadGen;

/// <summary>Cumulative server-side counters of one model, from Triton's statistics extension.</summary>
public readonly record struct ServerCounters(long SuccessCount, long QueueCount, long QueueNs, long ComputeCount, long ComputeNs, long ExecutionCount, long InferenceCount)
{
    /// <summary>Sums <c>model_stats[]</c> (every version) of a <c>GET /v2/models/{m}/stats</c> body.</summary>
    public static ServerCounters Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        long success = 0, queueCount = 0, queueNs = 0, computeCount = 0, computeNs = 0, executions = 0, inferences = 0;
        if (document.RootElement.TryGetProperty("model_stats", out var models))
        {
            foreach (var model in models.EnumerateArray())
            {
                executions += Number(model, "execution_count");
                inferences += Number(model, "inference_count");
                if (!model.TryGetProperty("inference_stats", out var stats))
                    continue;
                success += Count(stats, "success");
                queueCount += Count(stats, "queue");
                queueNs += Ns(stats, "queue");
                computeCount += Count(stats, "compute_infer");
                computeNs += Ns(stats, "compute_infer");
            }
        }
        return new ServerCounters(success, queueCount, queueNs, computeCount, computeNs, executions, inferences);
    }

    public ServerCounters Minus(ServerCounters before) => new(
        SuccessCount - before.SuccessCount,
        QueueCount - before.QueueCount,
        QueueNs - before.QueueNs,
        ComputeCount - before.ComputeCount,
        ComputeNs - before.ComputeNs,
        ExecutionCount - before.ExecutionCount,
        InferenceCount - before.InferenceCount);

    public double AverageQueueUs => QueueCount == 0 ? 0 : QueueNs / 1000d / QueueCount;

    public double AverageComputeUs => ComputeCount == 0 ? 0 : ComputeNs / 1000d / ComputeCount;

    /// <summary>Average sequences per forward on the server over the interval.</summary>
    public double AverageBatch => ExecutionCount == 0 ? 0 : (double)InferenceCount / ExecutionCount;

    private static long Number(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt64() : 0;

    private static long Count(JsonElement stats, string name) =>
        stats.TryGetProperty(name, out var entry) ? Number(entry, "count") : 0;

    private static long Ns(JsonElement stats, string name) =>
        stats.TryGetProperty(name, out var entry) ? Number(entry, "ns") : 0;
}

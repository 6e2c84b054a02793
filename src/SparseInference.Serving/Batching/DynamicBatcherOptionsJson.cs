using System.Text.Json;

namespace SparseInference.Serving.Batching;

/// <summary>
/// Reads a model's <c>batching</c> block (serving.json) into <see cref="DynamicBatcherOptions"/>. Keys follow
/// Triton's <c>dynamic_batching</c> in snake_case; <c>max_queue_delay_ms</c> is accepted beside
/// <c>max_queue_delay_microseconds</c>, and <c>policy</c> (<c>"work_conserving"</c>, the default, or <c>"delay"</c>)
/// picks the batching policy. Unknown keys and wrong types are errors naming the key.
/// </summary>
public static class DynamicBatcherOptionsJson
{
    // Upper bounds for what a manifest or a load's override may ask for; each is far above a useful setting and low
    // enough that no value can stall a queue for long, exhaust threads or allocate per-level state at will.
    public const int MaxBatchSizeLimit = 1024;
    public const long MaxQueueDelayLimitMicroseconds = 5_000_000;
    public const int PriorityLevelsLimit = 64;
    public const int WorkersLimit = 64;
    public const int MaxQueueSizeLimit = 65_536;
    public const long DefaultTimeoutLimitMicroseconds = 3_600_000_000;

    /// <summary>Options from <paramref name="batching"/> over the defaults; null or an absent block gives the defaults.</summary>
    /// <exception cref="FormatException">A key is unknown or has the wrong type or value.</exception>
    public static DynamicBatcherOptions Read(JsonElement? batching, string context = "batching")
    {
        var options = new DynamicBatcherOptions();
        if (batching is not { } block || block.ValueKind == JsonValueKind.Null || block.ValueKind == JsonValueKind.Undefined)
            return options;
        if (block.ValueKind != JsonValueKind.Object)
            throw new FormatException($"{context} must be an object, but was {block.ValueKind}.");

        foreach (var property in block.EnumerateObject())
        {
            var key = $"{context}.{property.Name}";
            var value = property.Value;
            switch (property.Name)
            {
                case "policy": options.Policy = Policy(key, value); break;
                case "max_batch_size": options.MaxBatchSize = Int(key, value, 1, MaxBatchSizeLimit); break;
                case "max_queue_delay_microseconds": options.MaxQueueDelayMicroseconds = Long(key, value, 0, MaxQueueDelayLimitMicroseconds); break;
                case "max_queue_delay_ms":
                    var milliseconds = Number(key, value);
                    if (!(milliseconds >= 0 && milliseconds <= MaxQueueDelayLimitMicroseconds / 1000d))
                        throw new FormatException($"{key} must be between 0 and {MaxQueueDelayLimitMicroseconds / 1000}, but was {value.GetRawText()}.");
                    options.MaxQueueDelayMicroseconds = (long)Math.Round(milliseconds * 1000);
                    break;
                case "preferred_batch_size":
                case "preferred_batch_sizes":
                    if (value.ValueKind != JsonValueKind.Array)
                        throw new FormatException($"{key} must be an array of integers, but was {value.ValueKind}.");
                    if (value.GetArrayLength() > MaxBatchSizeLimit)
                        throw new FormatException($"{key} must hold at most {MaxBatchSizeLimit} sizes, but held {value.GetArrayLength()}.");
                    options.PreferredBatchSizes = [.. value.EnumerateArray().Select((v, i) => Int($"{key}[{i}]", v, 1, MaxBatchSizeLimit))];
                    break;
                case "priority_levels": options.PriorityLevels = Int(key, value, 1, PriorityLevelsLimit); break;
                case "default_priority_level": options.DefaultPriorityLevel = Int(key, value, 1, PriorityLevelsLimit); break;
                case "workers":
                case "instance_count": options.Workers = Int(key, value, 1, WorkersLimit); break;
                case "max_padding_waste": options.MaxPaddingWaste = Number(key, value); break;
                case "default_queue_policy": ReadQueuePolicy(options, value, key); break;
                default:
                    throw new FormatException(
                        $"{key} is not a known batching setting; expected one of policy, max_batch_size, max_queue_delay_microseconds, max_queue_delay_ms, " +
                        "preferred_batch_size, priority_levels, default_priority_level, workers, max_padding_waste, default_queue_policy.");
            }
        }
        return options;
    }

    private static void ReadQueuePolicy(DynamicBatcherOptions options, JsonElement policy, string context)
    {
        if (policy.ValueKind != JsonValueKind.Object)
            throw new FormatException($"{context} must be an object, but was {policy.ValueKind}.");
        foreach (var property in policy.EnumerateObject())
        {
            var key = $"{context}.{property.Name}";
            var value = property.Value;
            switch (property.Name)
            {
                case "max_queue_size": options.MaxQueueSize = Int(key, value, 1, MaxQueueSizeLimit); break;
                case "default_timeout_microseconds": options.DefaultTimeoutMicroseconds = Long(key, value, 0, DefaultTimeoutLimitMicroseconds); break;
                case "timeout_action":
                    var action = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
                    options.TimeoutAction = action?.ToUpperInvariant() switch
                    {
                        "REJECT" => TimeoutAction.Reject,
                        "DELAY" => TimeoutAction.Delay,
                        _ => throw new FormatException($"{key} must be \"REJECT\" or \"DELAY\", but was {value.GetRawText()}."),
                    };
                    break;
                // Client timeouts may always shorten the default here; the key is accepted for Triton compatibility.
                case "allow_timeout_override": _ = Bool(key, value); break;
                default:
                    throw new FormatException(
                        $"{key} is not a known queue policy setting; expected one of max_queue_size, default_timeout_microseconds, timeout_action, allow_timeout_override.");
            }
        }
    }

    private static string Policy(string key, JsonElement value)
    {
        var name = value.ValueKind == JsonValueKind.String ? value.GetString()!.ToLowerInvariant() : null;
        return name is not null && BatchingPolicies.All.Contains(name)
            ? name
            : throw new FormatException($"{key} must be one of {string.Join(", ", BatchingPolicies.All.Select(p => $"\"{p}\""))}, but was {value.GetRawText()}.");
    }

    private static int Int(string key, JsonElement value, int min, int max) => (int)Long(key, value, min, max);

    private static long Long(string key, JsonElement value, long min, long max)
    {
        // An integer written as 1e3 is still an integer; 2.5 is not; 1e300 is one, far out of range.
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || Math.Floor(number) != number)
            throw new FormatException($"{key} must be an integer, but was {value.GetRawText()}.");
        return value.TryGetInt64(out var exact) ? InRange(exact) : number >= min && number <= max ? InRange((long)number) : InRange(number < min ? long.MinValue : long.MaxValue);

        long InRange(long parsed) => parsed >= min && parsed <= max
            ? parsed
            : throw new FormatException($"{key} must be between {min} and {max}, but was {value.GetRawText()}.");
    }

    private static double Number(string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var parsed)
            ? parsed
            : throw new FormatException($"{key} must be a number, but was {value.GetRawText()}.");

    private static bool Bool(string key, JsonElement value) =>
        value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : throw new FormatException($"{key} must be true or false, but was {value.GetRawText()}.");
}

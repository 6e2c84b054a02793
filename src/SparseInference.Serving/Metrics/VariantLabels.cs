using System.Diagnostics;

namespace SparseInference.Serving.Metrics;

/// <summary>The <c>model</c>, <c>version</c> and <c>variant</c> labels shared by per-variant series.</summary>
public readonly record struct VariantLabels(string Model, string Version, string Variant)
{
    public const string ModelKey = "model";
    public const string VersionKey = "version";
    public const string VariantKey = "variant";

    internal TagList ToTags()
    {
        var tags = new TagList
        {
            { ModelKey, Model ?? string.Empty },
            { VersionKey, Version ?? string.Empty },
            { VariantKey, Variant ?? string.Empty },
        };
        return tags;
    }
}

/// <summary>Values of the <c>reason</c> label of the rejections counter.</summary>
public static class RejectionReasons
{
    public const string QueueFull = "queue_full";
    public const string Deadline = "deadline";
    public const string Invalid = "invalid";
    public const string Memory = "memory";
}

/// <summary>Values of the <c>outcome</c> label of the requests counter.</summary>
public static class RequestOutcomes
{
    public const string Success = "success";
    public const string Invalid = "invalid";
    public const string Rejected = "rejected";
    public const string Timeout = "timeout";
    public const string Cancelled = "cancelled";
    public const string Error = "error";
}

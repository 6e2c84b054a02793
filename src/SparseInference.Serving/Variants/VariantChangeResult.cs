namespace SparseInference.Serving.Variants;

public enum VariantChangeStatus
{
    /// <summary>The change was applied and the new table is serving.</summary>
    Applied,
    /// <summary>A new variant was created and is serving (at weight 0 until a split gives it traffic).</summary>
    Created,
    /// <summary>Another change to this model is in progress, or the change contradicts the current state.</summary>
    Conflict,
    /// <summary>The named variant does not exist.</summary>
    NotFound,
    /// <summary>The request was malformed; nothing was built.</summary>
    Invalid,
    /// <summary>Loading or warming the new variant failed; the old table keeps serving.</summary>
    BuildFailed,
    /// <summary>The shared state store could not be read or written; nothing changed.</summary>
    Unavailable,
}

/// <summary>Outcome of a change; <see cref="Table"/> is the table serving afterwards (old on failure).</summary>
public sealed record VariantChangeResult(VariantChangeStatus Status, RoutingTable Table, string? Error = null)
{
    public bool Succeeded => Status is VariantChangeStatus.Applied or VariantChangeStatus.Created;
}

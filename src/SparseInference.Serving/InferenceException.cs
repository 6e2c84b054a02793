namespace SparseInference.Serving;

/// <summary>What went wrong with a request, independent of the transport that maps it to a status.</summary>
public enum InferenceErrorKind
{
    /// <summary>The request is malformed or does not match the model (REST 400, gRPC INVALID_ARGUMENT).</summary>
    InvalidArgument,
    /// <summary>The model or version does not exist (REST 404, gRPC NOT_FOUND).</summary>
    NotFound,
    /// <summary>The server or model cannot serve now (REST 503, gRPC UNAVAILABLE).</summary>
    Unavailable,
    /// <summary>A size limit was exceeded, or a request needs more memory than the server's whole in-flight budget (REST 413, gRPC RESOURCE_EXHAUSTED).</summary>
    ResourceExhausted,
    /// <summary>The server failed (REST 500, gRPC INTERNAL).</summary>
    Internal,
    /// <summary>The variant's request queue is full, or the in-flight memory budget has no room now (REST 429 with Retry-After, gRPC RESOURCE_EXHAUSTED).</summary>
    Overloaded,
    /// <summary>The request's deadline passed before it was scheduled (REST 504, gRPC DEADLINE_EXCEEDED).</summary>
    DeadlineExceeded,
    /// <summary>The operation is not allowed where or by whom it was asked (REST 403, gRPC PERMISSION_DENIED).</summary>
    PermissionDenied,
}

/// <summary>A request failure whose message is meant for the caller: it names the field, expected and actual value.</summary>
public sealed class InferenceException(InferenceErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public InferenceErrorKind Kind { get; } = kind;

    /// <summary>For <see cref="InferenceErrorKind.Overloaded"/>: whole seconds the caller should wait before retrying.</summary>
    public int? RetryAfterSeconds { get; init; }

    public static InferenceException Invalid(string message) => new(InferenceErrorKind.InvalidArgument, message);
}

namespace SparseInference.Serving.Protocol;

/// <summary>A transport-neutral inference request; REST and gRPC both parse into this.</summary>
public sealed class InferenceRequest
{
    public const string VariantParameter = "variant";
    public const string RestProtocol = "rest";
    public const string GrpcProtocol = "grpc";

    /// <summary>The transport the request came in on, for metrics labels.</summary>
    public string Protocol { get; init; } = RestProtocol;

    public required string ModelName { get; init; }
    public string? ModelVersion { get; init; }
    public string? Id { get; init; }
    public IReadOnlyDictionary<string, InferenceParameter> Parameters { get; init; } = new Dictionary<string, InferenceParameter>();
    public required IReadOnlyList<InferenceInput> Inputs { get; init; }

    /// <summary>Outputs to return; empty means all of the model's outputs.</summary>
    public IReadOnlyList<RequestedOutput> Outputs { get; init; } = [];

    /// <summary>REST <c>binary_data_output</c>: outputs not asking otherwise use the binary tensor data extension.</summary>
    public bool BinaryOutputByDefault { get; init; }

    /// <summary>Reads a request header (REST) or metadata entry (gRPC), e.g. the routing key; null when the transport has none.</summary>
    public Func<string, string?>? HeaderLookup { get; init; }

    /// <summary>The transport's deadline (gRPC <c>grpc-timeout</c>); the request is not executed once it has passed.</summary>
    public DateTimeOffset? Deadline { get; init; }

    /// <summary>This request with the transport's header lookup and deadline.</summary>
    public InferenceRequest WithHeaders(Func<string, string?>? headerLookup, DateTimeOffset? deadline) => new()
    {
        Protocol = Protocol,
        ModelName = ModelName,
        ModelVersion = ModelVersion,
        Id = Id,
        Parameters = Parameters,
        Inputs = Inputs,
        Outputs = Outputs,
        BinaryOutputByDefault = BinaryOutputByDefault,
        HeaderLookup = headerLookup,
        Deadline = deadline,
    };
}

public sealed class InferenceInput
{
    public required string Name { get; init; }
    public required string Datatype { get; init; }
    public required long[] Shape { get; init; }
    public required TensorData Data { get; init; }
}

/// <summary>An output the caller asked for; <see cref="Binary"/> asks REST for the binary tensor data extension.</summary>
public sealed record RequestedOutput(string Name, bool Binary = false);

/// <summary>A transport-neutral inference response.</summary>
public sealed class InferenceResponse
{
    public required string ModelName { get; init; }
    public required string ModelVersion { get; init; }
    public string? Id { get; init; }
    public required string Variant { get; init; }
    public required IReadOnlyDictionary<string, InferenceParameter> Parameters { get; init; }
    public required IReadOnlyList<InferenceOutput> Outputs { get; init; }
}

public sealed class InferenceOutput
{
    public required string Name { get; init; }
    public required string Datatype { get; init; }
    public required long[] Shape { get; init; }
    public float[]? Float32 { get; init; }
    public bool[]? Bool { get; init; }
    public bool Binary { get; init; }

    public int Count => Float32?.Length ?? Bool?.Length ?? 0;

    public int ByteLength => Float32 is not null ? Float32.Length * sizeof(float) : Bool?.Length ?? 0;

    /// <summary>Little-endian element bytes, as binary tensor data and gRPC raw contents carry them.</summary>
    public void CopyBytesTo(Span<byte> destination)
    {
        if (Float32 is not null)
        {
            var source = System.Runtime.InteropServices.MemoryMarshal.AsBytes(Float32.AsSpan());
            if (BitConverter.IsLittleEndian)
            {
                source.CopyTo(destination);
            }
            else
            {
                for (var i = 0; i < Float32.Length; i++)
                {
                    System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(destination[(i * 4)..], Float32[i]);
                }
            }
        }
        else if (Bool is not null)
        {
            for (var i = 0; i < Bool.Length; i++)
            {
                destination[i] = Bool[i] ? (byte)1 : (byte)0;
            }
        }
    }
}

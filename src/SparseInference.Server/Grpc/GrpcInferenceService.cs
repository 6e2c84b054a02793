using Google.Protobuf;
using SparseInference.Serving.Repository;
using SparseInference.Serving;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Server.Rest;

namespace SparseInference.Server.Grpc;

/// <summary>
/// <c>inference.GRPCInferenceService</c>'s semantics: maps the OIP protobuf messages onto <see cref="InferenceService"/> and
/// the repository. Transport-free: the host's generated-base service calls these methods, and failures leave as
/// <see cref="InferenceException"/> for the host to turn into gRPC statuses.
/// </summary>
public sealed class GrpcInferenceService(InferenceService inference, ModelRepository repository, ServerState state)
{
    public const string ServiceName = "inference.GRPCInferenceService";

    public ServerLiveResponse ServerLive() => new() { Live = state.IsLive };

    public ServerReadyResponse ServerReady() => new() { Ready = state.IsReady };

    /// <summary>Loading and unloading change what every client is served: they need the admin token, on the admin port.</summary>
    public static InferenceException ModelControlRefused(string method) => new(
        InferenceErrorKind.PermissionDenied,
        $"{RestEndpoints.ModelControlElsewhere} (the REST form of {method}: POST /v2/repository/models/{{model}}/{(method.EndsWith("Unload", StringComparison.Ordinal) ? "unload" : "load")}).");

    public ModelReadyResponse ModelReady(ModelReadyRequest request)
    {
        try
        {
            repository.Resolve(request.Name, request.Version);
            return new ModelReadyResponse { Ready = true };
        }
        catch (InferenceException ex) when (ex.Kind == InferenceErrorKind.Unavailable)
        {
            return new ModelReadyResponse { Ready = false };
        }
    }

    public static ServerMetadataResponse ServerMetadata()
    {
        var response = new ServerMetadataResponse { Name = ServerState.ServerName, Version = ServerState.Version };
        response.Extensions.AddRange(ServerState.Extensions);
        return response;
    }

    public ModelMetadataResponse ModelMetadata(ModelMetadataRequest request)
    {
        var model = repository.Resolve(request.Name, request.Version);
        var contract = ModelTensorContract.For(model.Configuration);
        var response = new ModelMetadataResponse { Name = model.ModelName, Platform = RestEndpoints.Platform };
        response.Versions.AddRange(repository.Versions(model.ModelName));
        response.Inputs.AddRange(contract.Inputs.Select(ToProto));
        response.Outputs.AddRange(contract.Outputs.Select(ToProto));
        return response;
    }

    private static ModelMetadataResponse.Types.TensorMetadata ToProto(TensorMetadata tensor)
    {
        var proto = new ModelMetadataResponse.Types.TensorMetadata { Name = tensor.Name, Datatype = tensor.Datatype };
        proto.Shape.AddRange(tensor.Shape);
        return proto;
    }

    /// <summary>One inference; <paramref name="metadata"/> reads request metadata (routing keys), <paramref name="deadline"/> bounds the time queued.</summary>
    public async ValueTask<ModelInferResponse> ModelInferAsync(
        ModelInferRequest request, Func<string, string?> metadata, DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        // Converted while the request's memory is still admitted: the raw contents are a copy of the outputs.
        ModelInferResponse? answer = null;
        await inference.InferAsync(ToInferenceRequest(request).WithHeaders(metadata, deadline), (response, _) =>
        {
            answer = ToProto(response);
            return ValueTask.CompletedTask;
        }, cancellationToken).ConfigureAwait(false);
        return answer!;
    }

    /// <summary>Requests are answered in order; a failed request yields an <c>error_message</c> and the stream goes on.</summary>
    public async Task ModelStreamInferAsync(
        IAsyncEnumerable<ModelInferRequest> requests, Func<ModelStreamInferResponse, Task> write, Func<string, string?> metadata,
        DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        await foreach (var request in requests.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            ModelStreamInferResponse message;
            try
            {
                // Written while the request's memory is still admitted.
                await inference.InferAsync(ToInferenceRequest(request).WithHeaders(metadata, deadline), (response, _) =>
                    new ValueTask(write(new ModelStreamInferResponse { InferResponse = ToProto(response) })), cancellationToken).ConfigureAwait(false);
                continue;
            }
            catch (InferenceException ex)
            {
                message = new ModelStreamInferResponse
                {
                    ErrorMessage = ex.Message,
                    InferResponse = new ModelInferResponse { ModelName = request.ModelName, ModelVersion = request.ModelVersion, Id = request.Id },
                };
            }

            await write(message).ConfigureAwait(false);
        }
    }

    internal static InferenceRequest ToInferenceRequest(ModelInferRequest request)
    {
        var raw = request.RawInputContents;
        if (raw.Count > 0 && raw.Count != request.Inputs.Count)
        {
            throw InferenceException.Invalid(
                $"raw_input_contents has {raw.Count} entries, expected one per input ({request.Inputs.Count}).");
        }

        var inputs = new List<InferenceInput>(request.Inputs.Count);
        for (var i = 0; i < request.Inputs.Count; i++)
        {
            var input = request.Inputs[i];
            TensorData data;
            if (raw.Count > 0)
            {
                if (input.Contents is not null && HasContents(input.Contents))
                {
                    throw InferenceException.Invalid($"input '{input.Name}': give either contents or raw_input_contents, not both.");
                }

                data = new RawTensorData(raw[i].Memory);
            }
            else
            {
                if (input.Datatype is TensorDatatypes.Fp16 or TensorDatatypes.Bf16)
                {
                    throw InferenceException.Invalid($"input '{input.Name}': datatype {input.Datatype} has no typed contents field; send it in raw_input_contents.");
                }

                data = new ProtoTensorData(input.Contents ?? new InferTensorContents());
            }

            inputs.Add(new InferenceInput { Name = input.Name, Datatype = input.Datatype, Shape = [.. input.Shape], Data = data });
        }

        return new InferenceRequest
        {
            Protocol = InferenceRequest.GrpcProtocol,
            ModelName = request.ModelName,
            ModelVersion = string.IsNullOrEmpty(request.ModelVersion) ? null : request.ModelVersion,
            Id = string.IsNullOrEmpty(request.Id) ? null : request.Id,
            Parameters = ToParameters(request.Parameters),
            Inputs = inputs,
            Outputs = [.. request.Outputs.Select(o => new RequestedOutput(o.Name))],
        };
    }

    private static bool HasContents(InferTensorContents c) =>
        c.BoolContents.Count + c.IntContents.Count + c.Int64Contents.Count + c.UintContents.Count + c.Uint64Contents.Count
        + c.Fp32Contents.Count + c.Fp64Contents.Count + c.BytesContents.Count > 0;

    private static Dictionary<string, InferenceParameter> ToParameters(IDictionary<string, InferParameter> parameters)
    {
        var result = new Dictionary<string, InferenceParameter>(StringComparer.Ordinal);
        foreach (var (name, p) in parameters)
        {
            result[name] = p.ParameterChoiceCase switch
            {
                InferParameter.ParameterChoiceOneofCase.BoolParam => InferenceParameter.Of(p.BoolParam),
                InferParameter.ParameterChoiceOneofCase.Int64Param => InferenceParameter.Of(p.Int64Param),
                InferParameter.ParameterChoiceOneofCase.StringParam => InferenceParameter.Of(p.StringParam),
                InferParameter.ParameterChoiceOneofCase.DoubleParam => InferenceParameter.Of(p.DoubleParam),
                InferParameter.ParameterChoiceOneofCase.Uint64Param => InferenceParameter.Of((long)p.Uint64Param),
                _ => throw InferenceException.Invalid($"parameter '{name}' has no value set."),
            };
        }

        return result;
    }

    internal static ModelInferResponse ToProto(InferenceResponse response)
    {
        var proto = new ModelInferResponse
        {
            ModelName = response.ModelName,
            ModelVersion = response.ModelVersion,
            Id = response.Id ?? "",
        };
        foreach (var (name, value) in response.Parameters)
        {
            proto.Parameters[name] = value.Value switch
            {
                string s => new InferParameter { StringParam = s },
                bool b => new InferParameter { BoolParam = b },
                long l => new InferParameter { Int64Param = l },
                double d => new InferParameter { DoubleParam = d },
                _ => new InferParameter(),
            };
        }

        foreach (var output in response.Outputs)
        {
            var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = output.Datatype };
            tensor.Shape.AddRange(output.Shape);
            proto.Outputs.Add(tensor);
            var bytes = new byte[output.ByteLength];
            output.CopyBytesTo(bytes);
            proto.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(bytes));
        }

        return proto;
    }

    public RepositoryIndexResponse RepositoryIndex(RepositoryIndexRequest request)
    {
        var response = new RepositoryIndexResponse();
        foreach (var entry in repository.Index(request.Ready))
        {
            response.Models.Add(new RepositoryIndexResponse.Types.ModelIndex { Name = entry.Name, Version = entry.Version, State = entry.State, Reason = entry.Reason });
        }

        return response;
    }
}

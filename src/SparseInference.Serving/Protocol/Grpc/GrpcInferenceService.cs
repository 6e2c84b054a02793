using Google.Protobuf;
using SparseInference.Serving.Grpc;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Protocol.Grpc;

/// <summary>
/// <c>inference.GRPCInferenceService</c>: maps the OIP protobuf messages onto <see cref="InferenceService"/> and the
/// repository, and registers each method with the transport.
/// </summary>
public sealed class GrpcInferenceService(InferenceService inference, ModelRepository repository, ServerState state)
{
    public const string ServiceName = "inference.GRPCInferenceService";

    public GrpcMethodRegistry Register(GrpcMethodRegistry registry) => registry
        .AddUnary(ServiceName, "ServerLive", ServerLiveRequest.Parser, (ServerLiveRequest _, GrpcCallContext _) =>
            ValueTask.FromResult(new ServerLiveResponse { Live = state.IsLive }))
        .AddUnary(ServiceName, "ServerReady", ServerReadyRequest.Parser, (ServerReadyRequest _, GrpcCallContext _) =>
            ValueTask.FromResult(new ServerReadyResponse { Ready = state.IsReady }))
        .AddUnary(ServiceName, "ModelReady", ModelReadyRequest.Parser, (ModelReadyRequest r, GrpcCallContext _) => Guard(() => ModelReady(r)))
        .AddUnary(ServiceName, "ServerMetadata", ServerMetadataRequest.Parser, (ServerMetadataRequest _, GrpcCallContext _) =>
            ValueTask.FromResult(ServerMetadata()))
        .AddUnary(ServiceName, "ModelMetadata", ModelMetadataRequest.Parser, (ModelMetadataRequest r, GrpcCallContext _) => Guard(() => ModelMetadata(r)))
        .AddUnary(ServiceName, "ModelInfer", ModelInferRequest.Parser, ModelInferAsync)
        .AddDuplexStreaming<ModelInferRequest, ModelStreamInferResponse>(ServiceName, "ModelStreamInfer", ModelInferRequest.Parser, ModelStreamInferAsync)
        .AddUnary(ServiceName, "RepositoryIndex", RepositoryIndexRequest.Parser, (RepositoryIndexRequest r, GrpcCallContext _) => Guard(() => RepositoryIndex(r)))
        // Loading and unloading change what every client is served: they need the admin token, on the admin port.
        .AddUnary(ServiceName, "RepositoryModelLoad", RepositoryModelLoadRequest.Parser, (RepositoryModelLoadRequest _, GrpcCallContext _) =>
            Guard<RepositoryModelLoadResponse>(() => throw ModelControlRefused("RepositoryModelLoad")))
        .AddUnary(ServiceName, "RepositoryModelUnload", RepositoryModelUnloadRequest.Parser, (RepositoryModelUnloadRequest _, GrpcCallContext _) =>
            Guard<RepositoryModelUnloadResponse>(() => throw ModelControlRefused("RepositoryModelUnload")));

    private static InferenceException ModelControlRefused(string method) => new(
        InferenceErrorKind.PermissionDenied,
        $"{Rest.RestEndpoints.ModelControlElsewhere} (the REST form of {method}: POST /v2/repository/models/{{model}}/{(method.EndsWith("Unload", StringComparison.Ordinal) ? "unload" : "load")}).");

    private ModelReadyResponse ModelReady(ModelReadyRequest request)
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

    private static ServerMetadataResponse ServerMetadata()
    {
        var response = new ServerMetadataResponse { Name = ServerState.ServerName, Version = ServerState.Version };
        response.Extensions.AddRange(ServerState.Extensions);
        return response;
    }

    private ModelMetadataResponse ModelMetadata(ModelMetadataRequest request)
    {
        var model = repository.Resolve(request.Name, request.Version);
        var contract = ModelTensorContract.For(model.Configuration);
        var response = new ModelMetadataResponse { Name = model.ModelName, Platform = Rest.RestEndpoints.Platform };
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

    private async ValueTask<ModelInferResponse> ModelInferAsync(ModelInferRequest request, GrpcCallContext context)
    {
        try
        {
            // Converted while the request's memory is still admitted: the raw contents are a copy of the outputs.
            ModelInferResponse? answer = null;
            await inference.InferAsync(WithCallContext(ToInferenceRequest(request), context), (response, _) =>
            {
                answer = ToProto(response);
                return ValueTask.CompletedTask;
            }, context.CancellationToken).ConfigureAwait(false);
            return answer!;
        }
        catch (InferenceException ex)
        {
            throw ToStatus(ex);
        }
    }

    /// <summary>Requests are answered in order; a failed request yields an <c>error_message</c> and the stream goes on.</summary>
    private async Task ModelStreamInferAsync(
        IAsyncEnumerable<ModelInferRequest> requests, IGrpcStreamWriter<ModelStreamInferResponse> writer, GrpcCallContext context)
    {
        await foreach (var request in requests.WithCancellation(context.CancellationToken).ConfigureAwait(false))
        {
            ModelStreamInferResponse message;
            try
            {
                // Written while the request's memory is still admitted.
                await inference.InferAsync(WithCallContext(ToInferenceRequest(request), context), (response, cancellationToken) =>
                    writer.WriteAsync(new ModelStreamInferResponse { InferResponse = ToProto(response) }, cancellationToken), context.CancellationToken).ConfigureAwait(false);
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

            await writer.WriteAsync(message, context.CancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Routing keys may come from request metadata; the call's deadline bounds the time queued.</summary>
    private static InferenceRequest WithCallContext(InferenceRequest request, GrpcCallContext context)
    {
        var headers = context.HttpContext.Request.Headers;
        return request.WithHeaders(name => headers.TryGetValue(name.ToLowerInvariant(), out var value) ? value.ToString() : null, context.Deadline);
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

    private RepositoryIndexResponse RepositoryIndex(RepositoryIndexRequest request)
    {
        var response = new RepositoryIndexResponse();
        foreach (var entry in repository.Index(request.Ready))
        {
            response.Models.Add(new RepositoryIndexResponse.Types.ModelIndex { Name = entry.Name, Version = entry.Version, State = entry.State, Reason = entry.Reason });
        }

        return response;
    }

    private static ValueTask<T> Guard<T>(Func<T> handler)
    {
        try
        {
            return ValueTask.FromResult(handler());
        }
        catch (InferenceException ex)
        {
            throw ToStatus(ex);
        }
    }

    internal static GrpcStatusException ToStatus(InferenceException ex) => new(
        ex.Kind switch
        {
            InferenceErrorKind.InvalidArgument => GrpcStatusCode.InvalidArgument,
            InferenceErrorKind.NotFound => GrpcStatusCode.NotFound,
            InferenceErrorKind.Unavailable => GrpcStatusCode.Unavailable,
            InferenceErrorKind.ResourceExhausted or InferenceErrorKind.Overloaded => GrpcStatusCode.ResourceExhausted,
            InferenceErrorKind.DeadlineExceeded => GrpcStatusCode.DeadlineExceeded,
            InferenceErrorKind.PermissionDenied => GrpcStatusCode.PermissionDenied,
            _ => GrpcStatusCode.Internal,
        },
        ex.Message);
}

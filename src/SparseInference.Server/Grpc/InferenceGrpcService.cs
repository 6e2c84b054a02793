using Grpc.Core;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.Grpc;

/// <summary>
/// <c>inference.GRPCInferenceService</c> on grpc-dotnet: each override hands the call to <see cref="GrpcInferenceService"/>,
/// which owns the protocol's semantics. <see cref="InferenceException"/> and faults become statuses in
/// <see cref="GrpcStatusInterceptor"/>; <see cref="BindService"/> binds the generated methods with request
/// deserializers that answer a malformed message with INTERNAL naming the message (see docs/grpc.md).
/// </summary>
[BindServiceMethod(typeof(InferenceGrpcService), nameof(BindService))]
public sealed class InferenceGrpcService(GrpcInferenceService inference) : GRPCInferenceService.GRPCInferenceServiceBase
{
    /// <summary>
    /// Found by grpc-dotnet through the attribute above, in place of the generated binding it wraps; the parameter keeps the
    /// generated base type, which grpc-dotnet checks the overrides against.
    /// </summary>
    public static void BindService(ServiceBinderBase binder, GRPCInferenceService.GRPCInferenceServiceBase? service) =>
        GRPCInferenceService.BindService(new MalformedMessageBinder(binder), service!);

    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(inference.ServerLive());

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(inference.ServerReady());

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context) =>
        Task.FromResult(inference.ModelReady(request));

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(GrpcInferenceService.ServerMetadata());

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(inference.ModelMetadata(request));

    public override Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context) =>
        inference.ModelInferAsync(request, MetadataLookup(context), Deadline(context), context.CancellationToken).AsTask();

    public override Task ModelStreamInfer(
        IAsyncStreamReader<ModelInferRequest> requestStream, IServerStreamWriter<ModelStreamInferResponse> responseStream, ServerCallContext context) =>
        inference.ModelStreamInferAsync(
            requestStream.ReadAllAsync(context.CancellationToken), responseStream.WriteAsync, MetadataLookup(context), Deadline(context), context.CancellationToken);

    public override Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context) =>
        Task.FromResult(inference.RepositoryIndex(request));

    public override Task<RepositoryModelLoadResponse> RepositoryModelLoad(RepositoryModelLoadRequest request, ServerCallContext context) =>
        throw GrpcInferenceService.ModelControlRefused(nameof(RepositoryModelLoad));

    public override Task<RepositoryModelUnloadResponse> RepositoryModelUnload(RepositoryModelUnloadRequest request, ServerCallContext context) =>
        throw GrpcInferenceService.ModelControlRefused(nameof(RepositoryModelUnload));

    /// <summary>Request metadata by name (routing keys), read from the HTTP/2 headers, which ignore case.</summary>
    private static Func<string, string?> MetadataLookup(ServerCallContext context)
    {
        var headers = context.GetHttpContext().Request.Headers;
        return name => headers.TryGetValue(name, out var value) ? value.ToString() : null;
    }

    /// <summary>The call's deadline from <c>grpc-timeout</c>; grpc-dotnet reports none as <see cref="DateTime.MaxValue"/>.</summary>
    private static DateTimeOffset? Deadline(ServerCallContext context) =>
        context.Deadline == DateTime.MaxValue ? null : new DateTimeOffset(DateTime.SpecifyKind(context.Deadline, DateTimeKind.Utc));
}

using Google.Protobuf;
using Grpc.Core;

namespace SparseInference.Server.Grpc;

/// <summary>
/// Binds methods with a request deserializer that turns unparsable protobuf into INTERNAL naming the message type, as gRPC
/// C-core servers (Triton's among them) answer it. grpc-dotnet would report UNKNOWN and log the client's bytes as a server
/// error with a stack trace; the status here is the client's to read, and grpc-dotnet logs it at Information.
/// </summary>
internal sealed class MalformedMessageBinder(ServiceBinderBase inner) : ServiceBinderBase
{
    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(WithCheckedRequests(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(WithCheckedRequests(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(WithCheckedRequests(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(WithCheckedRequests(method), handler);

    internal static Method<TRequest, TResponse> WithCheckedRequests<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class
        where TResponse : class
    {
        var requests = method.RequestMarshaller;
        var checkedRequests = new Marshaller<TRequest>(requests.ContextualSerializer, context => Deserialize(requests, context));
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, checkedRequests, method.ResponseMarshaller);
    }

    private static T Deserialize<T>(Marshaller<T> marshaller, DeserializationContext context)
        where T : class
    {
        try
        {
            return marshaller.ContextualDeserializer(context);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"malformed protobuf message {typeof(T).Name}: {ex.Message}"));
        }
    }
}

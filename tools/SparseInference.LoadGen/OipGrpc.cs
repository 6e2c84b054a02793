using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.LoadGen;

/// <summary><c>inference.GRPCInferenceService/ModelInfer</c> for grpc-dotnet's client (Grpc.Net.Client), shared by the tools.</summary>
public static class OipGrpc
{
    public const string ServiceName = "inference.GRPCInferenceService";

    public static readonly Method<ModelInferRequest, ModelInferResponse> ModelInfer = new(
        MethodType.Unary, ServiceName, "ModelInfer", Marshaller(ModelInferRequest.Parser), Marshaller(ModelInferResponse.Parser));

    /// <summary>A cleartext (or https) channel without message size limits, opening more HTTP/2 connections as streams fill them.</summary>
    public static GrpcChannel Channel(string address, TimeSpan connectionLifetime) =>
        GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, PooledConnectionLifetime = connectionLifetime },
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
        });

    /// <summary>Protobuf straight into and out of the call's buffers, as generated gRPC clients do.</summary>
    private static Marshaller<T> Marshaller<T>(MessageParser<T> parser)
        where T : class, IMessage<T>, IBufferMessage =>
        new(
            (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => parser.ParseFrom(context.PayloadAsReadOnlySequence()));
}

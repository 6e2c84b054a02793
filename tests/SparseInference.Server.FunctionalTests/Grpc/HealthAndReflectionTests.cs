using System.Net;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Reliability;

namespace SparseInference.Server.FunctionalTests.Grpc;

/// <summary>The standard grpc.health.v1 service and server reflection, as Kubernetes' gRPC probe and grpcurl-style tools use them.</summary>
[Collection(ServerCollection.Name)]
public sealed class HealthAndReflectionTests(ServerFixture server)
{
    [Theory]
    [InlineData("")]
    [InlineData(GrpcTestClient.ServiceName)]
    public async Task HealthCheck_ReadyServer_Serving(string service)
    {
        var health = new Health.HealthClient(server.Grpc.Invoker);
        var reply = await health.CheckAsync(new HealthCheckRequest { Service = service });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }

    [Fact]
    public async Task HealthCheck_UnknownService_NotFound()
    {
        var health = new Health.HealthClient(server.Grpc.Invoker);
        var error = await Assert.ThrowsAsync<RpcException>(async () => await health.CheckAsync(new HealthCheckRequest { Service = "nosuch.Service" }));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }

    [Fact]
    public async Task Reflection_ListServices_NamesTheInferenceAndHealthServices()
    {
        var reflection = new ServerReflection.ServerReflectionClient(server.Grpc.Invoker);
        using var call = reflection.ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = GrpcTestClient.ServiceName });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.True(await call.ResponseStream.MoveNext());
        var files = call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto
            .Select(bytes => Google.Protobuf.Reflection.FileDescriptorProto.Parser.ParseFrom(bytes)).ToList();

        Assert.Contains(GrpcTestClient.ServiceName, services);
        Assert.Contains("grpc.health.v1.Health", services);
        var file = Assert.Single(files, f => f.Service.Any(s => s.Name == "GRPCInferenceService"));
        Assert.Equal("inference", file.Package);
        Assert.Contains(file.Service.Single().Method, m => m.Name == "ModelStreamInfer" && m.ClientStreaming && m.ServerStreaming);
    }
}

/// <summary>grpc.health.v1 while the server drains and when no model is ready, on real server processes.</summary>
public sealed class HealthStatusTests
{
    [Fact]
    public async Task HealthCheck_Draining_NotServingWhileRestReadinessFails()
    {
        using var server = LiveServerProcess.Start(new Dictionary<string, string> { ["SparseInference__Shutdown__DrainDelaySeconds"] = "10" });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        using var grpc = new GrpcTestClient(server.GrpcPort);
        var health = new Health.HealthClient(grpc.Invoker);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);

        server.Terminate();

        // The drain delay keeps the listeners open for 10 s after SIGTERM; within it the probe must see NOT_SERVING.
        var status = HealthCheckResponse.Types.ServingStatus.Serving;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(8);
        while (status == HealthCheckResponse.Types.ServingStatus.Serving && DateTime.UtcNow < until)
        {
            await Task.Delay(100);
            status = (await health.CheckAsync(new HealthCheckRequest())).Status;
        }

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = GrpcTestClient.ServiceName })).Status);
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}") };
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await rest.GetAsync("/v2/health/ready")).StatusCode);
    }

    [Fact]
    public async Task HealthCheck_NoModelReady_NotServing()
    {
        var empty = Directory.CreateTempSubdirectory("si-empty-repo-");
        try
        {
            using var server = LiveServerProcess.Start(new Dictionary<string, string>
            {
                ["SparseInference__ModelRepository"] = empty.FullName,
                ["SparseInference__Shutdown__DrainDelaySeconds"] = "0",
            });
            await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
            using var grpc = new GrpcTestClient(server.GrpcPort);
            var health = new Health.HealthClient(grpc.Invoker);

            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = GrpcTestClient.ServiceName })).Status);
        }
        finally
        {
            empty.Delete(recursive: true);
        }
    }
}

using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.Tests.Infrastructure;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Hosting;

public sealed class StartupValidationTests
{
    [Fact]
    public void Start_MissingModelRepository_FailsNamingKeyAndPath()
    {
        using var factory = new ConfiguredServer(new() { ["SparseInference:ModelRepository"] = "/nonexistent/models-dir" });
        var ex = Assert.ThrowsAny<Exception>(factory.StartServer);
        var validation = Assert.IsType<OptionsValidationException>(ex is AggregateException aggregate ? aggregate.InnerException : ex);
        Assert.Contains("SparseInference:ModelRepository", validation.Message);
        Assert.Contains("/nonexistent/models-dir", validation.Message);
    }

    [Fact]
    public void Start_BadAndDuplicatePorts_FailsNamingEachKey()
    {
        using var factory = new ConfiguredServer(new()
        {
            ["SparseInference:Ports:Rest"] = "70000",
            ["SparseInference:Ports:Admin"] = "8001",
            ["SparseInference:Ports:Grpc"] = "8001",
        });
        var ex = Assert.ThrowsAny<Exception>(factory.StartServer);
        var validation = Assert.IsType<OptionsValidationException>(ex is AggregateException aggregate ? aggregate.InnerException : ex);
        Assert.Contains("SparseInference:Ports:Rest must be a TCP port in 1..65535, got 70000", validation.Message);
        Assert.Contains("Ports:Grpc and Ports:Admin", validation.Message);
    }

    [Fact]
    public void Start_StateDirectoryThatCannotBeCreated_FailsNamingKeyAndPath()
    {
        var file = Path.Combine(TestStateDirectory.Create(), "not-a-directory");
        File.WriteAllText(file, "");
        using var factory = new ConfiguredServer(new() { [TestStateDirectory.Key] = Path.Combine(file, "state") });
        var ex = Assert.ThrowsAny<Exception>(factory.StartServer);
        var validation = Assert.IsType<OptionsValidationException>(ex is AggregateException aggregate ? aggregate.InnerException : ex);
        Assert.Contains("SparseInference:State:Directory: expected a directory this process can create and write", validation.Message);
        Assert.Contains(file, validation.Message);
    }

    [Fact]
    public void Start_TlsCertificateWithWrongPassword_FailsNamingKeyAndFile()
    {
        var directory = Directory.CreateTempSubdirectory("si-tls-start-").FullName;
        try
        {
            using var certificate = SparseInference.Server.Tests.Infrastructure.TestCertificates.Create();
            var pfx = SparseInference.Server.Tests.Infrastructure.TestCertificates.WritePkcs12(certificate, directory, "right-password");
            using var factory = new ConfiguredServer(new()
            {
                ["SparseInference:Tls:Grpc:CertificatePath"] = pfx,
                ["SparseInference:Tls:Grpc:Password"] = "wrong-password",
            });
            var ex = Assert.ThrowsAny<Exception>(factory.StartServer);
            var validation = Assert.IsType<OptionsValidationException>(ex is AggregateException aggregate ? aggregate.InnerException : ex);
            Assert.Contains("SparseInference:Tls:Grpc", validation.Message);
            Assert.Contains(pfx, validation.Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private sealed class ConfiguredServer : WebApplicationFactory<Program>
    {
        private readonly Dictionary<string, string?> _settings;

        public ConfiguredServer(Dictionary<string, string?> overrides)
        {
            _settings = new Dictionary<string, string?>
            {
                ["SparseInference:Ports:Rest"] = FreePort().ToString(),
                ["SparseInference:Ports:Grpc"] = FreePort().ToString(),
                ["SparseInference:Ports:Metrics"] = FreePort().ToString(),
                ["SparseInference:Ports:Admin"] = FreePort().ToString(),
                ["SparseInference:Shutdown:DrainDelaySeconds"] = "0",
                [TestStateDirectory.Key] = TestStateDirectory.Create(),
            };
            foreach (var (key, value) in overrides)
            {
                _settings[key] = value;
            }

            UseKestrel();
        }

        protected override void ConfigureWebHost(IWebHostBuilder builder) =>
            builder.ConfigureAppConfiguration((_, configuration) => configuration.AddInMemoryCollection(_settings));

        private static int FreePort()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            return port;
        }
    }
}

using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Server.Tests.Infrastructure;
using SparseInference.Serving.Tests.Infrastructure;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// The real server with HTTPS on all four listeners, configured from files written here: REST and metrics from a
/// PKCS#12 file with a password, gRPC and admin from PEM certificate + key (a Kubernetes TLS secret's layout).
/// </summary>
public sealed class TlsServerFixture : ServerFixture
{
    public const string Password = "tls-fixture-password";

    public TlsServerFixture()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("si-tls-").FullName;
        Certificate = TestCertificates.Create();
        PfxPath = TestCertificates.WritePkcs12(Certificate, Directory, Password);
        (CrtPath, KeyPath) = TestCertificates.WritePem(Certificate, Directory);
    }

    public string Directory { get; }
    public X509Certificate2 Certificate { get; }
    public string PfxPath { get; }
    public string CrtPath { get; }
    public string KeyPath { get; }

    protected override void AddSettings(IDictionary<string, string?> settings)
    {
        foreach (var port in new[] { "Rest", "Metrics" })
        {
            settings[$"SparseInference:Tls:{port}:CertificatePath"] = PfxPath;
            settings[$"SparseInference:Tls:{port}:Password"] = Password;
        }

        foreach (var port in new[] { "Grpc", "Admin" })
        {
            settings[$"SparseInference:Tls:{port}:CertificatePath"] = CrtPath;
            settings[$"SparseInference:Tls:{port}:KeyPath"] = KeyPath;
        }
    }

    /// <summary>A handler that trusts exactly the fixture's certificate and records what the server presented.</summary>
    public SocketsHttpHandler TrustingHandler(List<string> presented) => new()
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                lock (presented)
                {
                    presented.Add(certificate?.GetCertHashString() ?? "none");
                }

                return certificate is not null && certificate.GetCertHashString() == Certificate.Thumbprint;
            },
        },
    };
}

public sealed class TlsListenerTests(TlsServerFixture server) : IClassFixture<TlsServerFixture>
{
    [Fact]
    public async Task Rest_OverHttps_HealthAndInferenceAnswerWithTheConfiguredCertificate()
    {
        var presented = new List<string>();
        using var rest = new HttpClient(server.TrustingHandler(presented)) { BaseAddress = new Uri($"https://127.0.0.1:{server.RestPort}") };

        Assert.Equal(HttpStatusCode.OK, (await rest.GetAsync("/v2/health/ready")).StatusCode);
        var reply = await InferClient.InferAsync(rest, ServerFixture.ModelName, SensorWindows.Make(1, 32, ServerFixture.Channels), [1, 32, ServerFixture.Channels]);

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.NotEmpty(reply.Output);
        Assert.Equal(server.Certificate.Thumbprint, Assert.Single(presented.Distinct()));
    }

    [Fact]
    public async Task Grpc_OverTls_Http2NegotiatedAndInferenceAnswers()
    {
        var presented = new List<string>();
        using var grpc = new GrpcTestClient(new Uri($"https://127.0.0.1:{server.GrpcPort}"), () => server.TrustingHandler(presented));

        var live = await grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser);
        var infer = await grpc.UnaryAsync("ModelInfer", GrpcProtocolTests.RawRequest(SensorWindows.Make(1, 16, ServerFixture.Channels), 1, 16), ModelInferResponse.Parser);

        Assert.True(live.Single().Live);
        Assert.Equal(GrpcStatusCode.OK, infer.Status);
        Assert.Equal(server.Certificate.Thumbprint, Assert.Single(presented.Distinct()));
    }

    [Fact]
    public async Task MetricsAndAdmin_OverHttps_Answer()
    {
        var presented = new List<string>();
        using var handler = server.TrustingHandler(presented);
        using var client = new HttpClient(handler, disposeHandler: false);

        var metrics = await client.GetStringAsync($"https://127.0.0.1:{server.MetricsPort}/metrics");
        using var admin = new HttpRequestMessage(HttpMethod.Get, $"https://127.0.0.1:{server.AdminPort}/admin/models");
        admin.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ServerFixture.AdminToken);
        var models = await client.SendAsync(admin);

        Assert.Contains("sparseinference_", metrics);
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        Assert.Contains(ServerFixture.ModelName, await models.Content.ReadAsStringAsync());
        Assert.Equal(server.Certificate.Thumbprint, Assert.Single(presented.Distinct()));
    }

    [Fact]
    public async Task Cleartext_ToAnHttpsListener_GetsNoAnswer()
    {
        using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        foreach (var port in new[] { server.RestPort, server.MetricsPort, server.AdminPort })
        {
            var answered = false;
            try
            {
                var response = await plain.GetAsync($"http://127.0.0.1:{port}/v2/health/live");
                answered = response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                // Kestrel drops a connection that does not start with a TLS handshake.
            }

            Assert.False(answered, $"port {port} answered cleartext HTTP");
        }
    }

    [Fact]
    public async Task Https_ClientThatTrustsAnotherCertificate_IsRefused()
    {
        using var other = TestCertificates.Create(subject: "CN=someone-else");
        using var client = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.GetCertHashString() == other.Thumbprint,
            },
        });

        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"https://127.0.0.1:{server.RestPort}/v2/health/live"));
    }
}

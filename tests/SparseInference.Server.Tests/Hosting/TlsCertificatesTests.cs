using Microsoft.Extensions.Hosting;
using SparseInference.Server.Hosting;
using SparseInference.Serving.Hosting;
using SparseInference.Server.Tests.Infrastructure;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Server.Tests.Hosting;

/// <summary>Start-up validation of the listeners' certificates: each problem names the key, the file and what is wrong.</summary>
public sealed class TlsCertificatesTests : IDisposable
{
    private const string Password = "test-password-1";
    private readonly string _root = Directory.CreateTempSubdirectory("si-tls-").FullName;

    public TlsCertificatesTests() => Directory.CreateDirectory(Path.Combine(_root, "models"));

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string[] Failures(Action<TlsOptions> change)
    {
        var options = new SparseInferenceOptions();
        change(options.Tls);
        var result = new ListenerOptionsValidator(new TestHostEnvironment(_root)).Validate(null, options);
        return result.Failed ? [.. result.Failures!] : [];
    }

    [Fact]
    public void Validate_Pkcs12WithPassword_Succeeds()
    {
        using var certificate = TestCertificates.Create();
        var path = TestCertificates.WritePkcs12(certificate, _root, Password);
        Assert.Empty(Failures(t => t.Rest = new TlsEndpointOptions { CertificatePath = path, Password = Password }));
    }

    [Fact]
    public void Validate_PemCertificateAndKeyRelativeToContentRoot_Succeeds()
    {
        using var certificate = TestCertificates.Create();
        TestCertificates.WritePem(certificate, _root);
        Assert.Empty(Failures(t => t.Grpc = new TlsEndpointOptions { CertificatePath = "tls.crt", KeyPath = "tls.key" }));
    }

    [Fact]
    public void Validate_MissingCertificateFile_NamesKeyAndPath()
    {
        var failure = Assert.Single(Failures(t => t.Metrics = new TlsEndpointOptions { CertificatePath = "/nonexistent/server.pfx" }));
        Assert.Contains("SparseInference:Tls:Metrics:CertificatePath", failure);
        Assert.Contains("/nonexistent/server.pfx", failure);
    }

    [Fact]
    public void Validate_WrongPkcs12Password_NamesKeyAndFile()
    {
        using var certificate = TestCertificates.Create();
        var path = TestCertificates.WritePkcs12(certificate, _root, Password);
        var failure = Assert.Single(Failures(t => t.Admin = new TlsEndpointOptions { CertificatePath = path, Password = "wrong" }));
        Assert.Contains("SparseInference:Tls:Admin", failure);
        Assert.Contains($"cannot load the certificate '{path}'", failure);
    }

    [Fact]
    public void Validate_PemCertificateWithoutKey_SaysPrivateKeyIsMissing()
    {
        using var certificate = TestCertificates.Create();
        var (crt, _) = TestCertificates.WritePem(certificate, _root);
        var failure = Assert.Single(Failures(t => t.Rest = new TlsEndpointOptions { CertificatePath = crt }));
        Assert.Contains("SparseInference:Tls:Rest", failure);
        Assert.Contains(crt, failure);
    }

    [Fact]
    public void Validate_ExpiredCertificate_GivesValidityPeriod()
    {
        var notBefore = DateTimeOffset.UtcNow.AddDays(-10);
        using var certificate = TestCertificates.Create(notBefore, notBefore.AddDays(1));
        var path = TestCertificates.WritePkcs12(certificate, _root, Password);
        var failure = Assert.Single(Failures(t => t.Rest = new TlsEndpointOptions { CertificatePath = path, Password = Password }));
        Assert.Contains("SparseInference:Tls:Rest", failure);
        Assert.Contains("is valid from", failure);
        Assert.Contains($"{notBefore.AddDays(1).UtcDateTime:yyyy-MM-dd}", failure);
    }

    [Fact]
    public void Validate_KeyPathWithoutCertificate_Fails()
    {
        var failure = Assert.Single(Failures(t => t.Grpc = new TlsEndpointOptions { KeyPath = "tls.key" }));
        Assert.Contains("SparseInference:Tls:Grpc:KeyPath is set but CertificatePath is empty", failure);
    }

    [Fact]
    public void Validate_KeyPathWithPkcs12_SaysTheFileCarriesItsKey()
    {
        using var certificate = TestCertificates.Create();
        var path = TestCertificates.WritePkcs12(certificate, _root, Password);
        var (_, key) = TestCertificates.WritePem(certificate, _root);
        var failure = Assert.Single(Failures(t => t.Rest = new TlsEndpointOptions { CertificatePath = path, KeyPath = key, Password = Password }));
        Assert.Contains("leave SparseInference:Tls:Rest:KeyPath empty", failure);
    }
}

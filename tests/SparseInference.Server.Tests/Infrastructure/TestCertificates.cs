using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SparseInference.Server.Tests.Infrastructure;

/// <summary>Self-signed server certificates for 127.0.0.1 / localhost, written as PKCS#12 or PEM files.</summary>
public static class TestCertificates
{
    public static X509Certificate2 Create(DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null, string subject = "CN=localhost")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var from = notBefore ?? DateTimeOffset.UtcNow.AddMinutes(-5);
        return request.CreateSelfSigned(from, notAfter ?? from.AddDays(2));
    }

    /// <summary>Writes <paramref name="certificate"/> with its key as a PKCS#12 file protected by <paramref name="password"/>.</summary>
    public static string WritePkcs12(X509Certificate2 certificate, string directory, string password, string name = "server.pfx")
    {
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pkcs12, password));
        return path;
    }

    /// <summary>Writes the certificate and its unencrypted PKCS#8 key as PEM files (a Kubernetes TLS secret's tls.crt / tls.key).</summary>
    public static (string Certificate, string Key) WritePem(X509Certificate2 certificate, string directory, string prefix = "tls")
    {
        var certificatePath = Path.Combine(directory, prefix + ".crt");
        var keyPath = Path.Combine(directory, prefix + ".key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        using var key = certificate.GetECDsaPrivateKey()!;
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }
}

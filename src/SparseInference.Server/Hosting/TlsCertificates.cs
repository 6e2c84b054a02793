using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Hosting;
using SparseInference.Serving;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Hosting;

/// <summary>
/// Loads the listeners' server certificates from <see cref="TlsOptions"/> and opens each port with HTTPS when it has
/// one. Start-up validation loads the same files, so a missing file, a wrong password, a certificate without its
/// private key or one outside its validity period stops the process with a message naming the key and the file.
/// </summary>
internal static class TlsCertificates
{
    /// <summary>The four listeners: configuration key under <c>SparseInference:Tls</c>, port, certificate options.</summary>
    public static IEnumerable<(string Key, int Port, TlsEndpointOptions Tls)> Listeners(SparseInferenceOptions options) =>
    [
        ("Rest", options.Ports.Rest, options.Tls.Rest),
        ("Grpc", options.Ports.Grpc, options.Tls.Grpc),
        ("Metrics", options.Ports.Metrics, options.Tls.Metrics),
        ("Admin", options.Ports.Admin, options.Tls.Admin),
    ];

    /// <summary>Listens on <paramref name="port"/> (all interfaces) with <paramref name="protocols"/>, over HTTPS when configured.</summary>
    public static void Listen(KestrelServerOptions kestrel, int port, HttpProtocols protocols, TlsEndpointOptions tls, string key, string contentRoot)
    {
        X509Certificate2? certificate = null;
        if (tls.Enabled)
        {
            certificate = Load(tls, key, contentRoot, DateTimeOffset.UtcNow, out var error)
                ?? throw new InvalidOperationException(error);
        }

        kestrel.ListenAnyIP(port, listen =>
        {
            listen.Protocols = protocols;
            if (certificate is not null)
            {
                // ALPN then offers exactly these protocols: h2 alone on the gRPC port, as in cleartext.
                listen.UseHttps(certificate);
            }
        });
    }

    /// <summary>Loads and checks one listener's certificate; null with <paramref name="error"/> naming key, file and problem.</summary>
    public static X509Certificate2? Load(TlsEndpointOptions tls, string key, string contentRoot, DateTimeOffset now, out string error)
    {
        var name = $"{SparseInferenceOptions.SectionName}:Tls:{key}";
        var certificatePath = Resolve(contentRoot, tls.CertificatePath);
        var keyPath = string.IsNullOrWhiteSpace(tls.KeyPath) ? null : Resolve(contentRoot, tls.KeyPath);
        if (!File.Exists(certificatePath))
        {
            error = $"{name}:CertificatePath: no file '{certificatePath}'.";
            return null;
        }

        if (keyPath is not null && !File.Exists(keyPath))
        {
            error = $"{name}:KeyPath: no file '{keyPath}'.";
            return null;
        }

        X509Certificate2 certificate;
        try
        {
            certificate = IsPem(certificatePath) ? LoadPem(certificatePath, keyPath, tls.Password) : LoadPkcs12(certificatePath, keyPath, tls.Password, name);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException or IOException or InvalidOperationException)
        {
            error = $"{name}: cannot load the certificate '{certificatePath}'{(keyPath is null ? "" : $" with key '{keyPath}'")}: {ex.Message.TrimEnd('.')}.";
            return null;
        }

        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            error = $"{name}: the certificate '{certificatePath}' has no private key; give a PKCS#12 file with its key, or the PEM key in {name}:KeyPath.";
            return null;
        }

        if (now < certificate.NotBefore.ToUniversalTime() || now > certificate.NotAfter.ToUniversalTime())
        {
            var valid = $"{certificate.NotBefore.ToUniversalTime():u} to {certificate.NotAfter.ToUniversalTime():u}";
            certificate.Dispose();
            error = $"{name}: the certificate '{certificatePath}' is valid from {valid}, not now ({now.UtcDateTime:u}).";
            return null;
        }

        error = "";
        return certificate;
    }

    private static string Resolve(string contentRoot, string path) =>
        Path.GetFullPath(Path.IsPathRooted(path) ? path : Path.Combine(contentRoot, path));

    private static bool IsPem(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> start = stackalloc byte[64];
        var read = stream.Read(start);
        return System.Text.Encoding.ASCII.GetString(start[..read]).TrimStart().StartsWith("-----BEGIN", StringComparison.Ordinal);
    }

    private static X509Certificate2 LoadPem(string certificatePath, string? keyPath, string password) =>
        string.IsNullOrEmpty(password)
            ? X509Certificate2.CreateFromPemFile(certificatePath, keyPath)
            : X509Certificate2.CreateFromEncryptedPemFile(certificatePath, password, keyPath);

    private static X509Certificate2 LoadPkcs12(string certificatePath, string? keyPath, string password, string name)
    {
        if (keyPath is not null)
        {
            throw new InvalidOperationException($"the file is PKCS#12, which carries its own key; leave {name}:KeyPath empty");
        }

        return X509CertificateLoader.LoadPkcs12FromFile(certificatePath, string.IsNullOrEmpty(password) ? null : password);
    }
}

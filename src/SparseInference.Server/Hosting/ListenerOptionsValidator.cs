using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Hosting;

/// <summary>
/// Rejects listener settings the host cannot open (ports, body and message limits, TLS certificates), so the process stops
/// at start with a message naming the key and the file. The serving library validates the rest of the tree.
/// </summary>
internal sealed class ListenerOptionsValidator(IHostEnvironment environment, TimeProvider? time = null) : IValidateOptions<SparseInferenceOptions>
{
    public ValidateOptionsResult Validate(string? name, SparseInferenceOptions options)
    {
        var failures = new List<string>();
        var ports = new (string Key, int Value)[]
        {
            ("Ports:Rest", options.Ports.Rest),
            ("Ports:Grpc", options.Ports.Grpc),
            ("Ports:Metrics", options.Ports.Metrics),
            ("Ports:Admin", options.Ports.Admin),
        };
        foreach (var (key, value) in ports)
        {
            if (value is < 1 or > 65535)
            {
                failures.Add($"{SparseInferenceOptions.SectionName}:{key} must be a TCP port in 1..65535, got {value}.");
            }
        }

        foreach (var group in ports.GroupBy(p => p.Value).Where(g => g.Count() > 1))
        {
            failures.Add($"{SparseInferenceOptions.SectionName}: ports must differ, but {string.Join(" and ", group.Select(p => p.Key))} are all {group.Key}.");
        }

        if (options.Limits.MaxRequestBodyBytes is < 1024 or > LimitOptions.MaxRequestBodyLimit)
        {
            failures.Add($"{SparseInferenceOptions.SectionName}:Limits:MaxRequestBodyBytes must be in 1024..{LimitOptions.MaxRequestBodyLimit}, got {options.Limits.MaxRequestBodyBytes}.");
        }

        if (options.Limits.MaxGrpcMessageBytes is < 1024 or > LimitOptions.MaxGrpcMessageLimit)
        {
            failures.Add($"{SparseInferenceOptions.SectionName}:Limits:MaxGrpcMessageBytes must be in 1024..{LimitOptions.MaxGrpcMessageLimit}, got {options.Limits.MaxGrpcMessageBytes}.");
        }

        var now = (time ?? TimeProvider.System).GetUtcNow();
        foreach (var (key, _, tls) in TlsCertificates.Listeners(options))
        {
            if (!tls.Enabled)
            {
                if (!string.IsNullOrWhiteSpace(tls.KeyPath))
                {
                    failures.Add($"{SparseInferenceOptions.SectionName}:Tls:{key}:KeyPath is set but CertificatePath is empty; set both, or neither for cleartext.");
                }

                continue;
            }

            using var certificate = TlsCertificates.Load(tls, key, environment.ContentRootPath, now, out var error);
            if (certificate is null)
            {
                failures.Add(error);
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

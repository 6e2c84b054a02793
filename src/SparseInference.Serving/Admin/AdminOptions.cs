using Microsoft.Extensions.Options;

namespace SparseInference.Serving.Admin;

/// <summary>The admin API; bound from "SparseInference:Admin".</summary>
public sealed class AdminOptions
{
    public const string SectionName = "SparseInference:Admin";

    /// <summary>
    /// Bearer token the admin API requires. No default on purpose: without one the admin API refuses every
    /// request (403) instead of being open.
    /// </summary>
    public string? Token { get; set; }

    /// <summary>
    /// The local port admin requests must arrive on (8003 in the deployment); requests reaching the admin
    /// routes through any other port get 404. 0 turns the check off (in-memory test servers have no port).
    /// </summary>
    public int Port { get; set; } = 8003;

    public const int MinTokenLength = 16;
}

internal sealed class AdminOptionsValidator : IValidateOptions<AdminOptions>
{
    public ValidateOptionsResult Validate(string? name, AdminOptions options)
    {
        var errors = new List<string>();
        if (options.Port is < 0 or > 65535)
        {
            errors.Add($"{AdminOptions.SectionName}:Port: expected 0..65535, actual {options.Port}");
        }

        if (options.Token is { } token && token.Length < AdminOptions.MinTokenLength)
        {
            errors.Add($"{AdminOptions.SectionName}:Token: expected at least {AdminOptions.MinTokenLength} characters, actual {token.Length}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

using Microsoft.Extensions.Options;
using SparseInference.Serving.Hosting;
using SparseInference.Serving;

namespace SparseInference.Server.Admin;

/// <summary>The admin API; bound from "SparseInference:Admin", a node of the <see cref="SparseInferenceOptions"/> tree.</summary>
public sealed class AdminOptions
{
    public const string SectionName = SparseInferenceOptions.SectionName + ":Admin";

    /// <summary>
    /// Bearer token the admin API requires. No default on purpose: without one (absent, empty or blank) the
    /// admin API refuses every request (403) instead of being open.
    /// </summary>
    public string? Token { get; set; }

    /// <summary>
    /// The local port admin requests must arrive on; requests reaching the admin routes through any other port
    /// get 404. When "SparseInference:Admin:Port" is not set it follows "SparseInference:Ports:Admin" (the
    /// listener the host opens, <see cref="PortOptions.Admin"/>, whose default is this one's). 0 turns the check off
    /// (in-memory test servers have no port).
    /// </summary>
    public int Port { get; set; } = new PortOptions().Admin;

    public const int MinTokenLength = 16;

    public bool HasToken => !string.IsNullOrWhiteSpace(Token);
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

        // A blank token means "not configured" (the admin API then refuses everything), not a short token.
        if (options.HasToken && options.Token!.Length < AdminOptions.MinTokenLength)
        {
            errors.Add($"{AdminOptions.SectionName}:Token: expected at least {AdminOptions.MinTokenLength} characters, actual {options.Token.Length}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

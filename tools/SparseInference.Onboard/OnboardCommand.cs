using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SparseInference.Models;
using SparseInference.Serving;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Repository;
using SparseInference.Tensors;

namespace SparseInference.Onboard;

/// <summary>
/// Onboards a line from a CSV of its normal readings without loading a server (docs/baselines.md, <i>Offline onboarding</i>):
/// computes the line's baseline with the model repository's files on the CPU engine through the service's own library
/// (<see cref="OnboardingData.ReadCsv"/>, <see cref="BaselineCalibrator"/>: the numbers the admin API computes for the same
/// rows), then stores it through a server's admin API, where the server checks it against what it serves and every replica
/// applies it, or writes it out for review.
/// </summary>
public static class OnboardCommand
{
    public const int RefusedExitCode = 1;
    public const int UsageExitCode = 2;

    /// <summary>Where the admin token is read from when <c>--token</c> is not given (a command line is visible to other users of the host).</summary>
    public const string TokenVariable = "SPARSEINFERENCE_ADMIN_TOKEN";

    private static readonly Option<string> CsvOption = new("--csv")
    {
        Description = "The line's normal readings: a header row naming the model's channels (metadata.features; other columns ignored), ';' ',' tab or '|' separated, e.g. a SKAB file; '-' reads standard input.",
        Required = true,
    };

    private static readonly Option<string> LineOption = new("--line")
    {
        Description = "The line's key: the line_id (or X-Routing-Key) its inference requests carry.",
        Required = true,
    };

    private static readonly Option<int?> RowsOption = new("--rows")
    {
        Description = "Onboard on the first N data rows only (default: every row); SKAB's protocol uses 400.",
    };

    private static readonly Option<string> ModelOption = new("--model", "-m")
    {
        Description = "The model.",
        DefaultValueFactory = _ => "skab-pump",
    };

    private static readonly Option<string?> VersionOption = new("--model-version")
    {
        Description = "The model version (default: serving.json default_version, else the highest).",
    };

    private static readonly Option<string> ModelsOption = new("--models-dir")
    {
        Description = "The model repository the server serves from (SparseInference:ModelRepository).",
        DefaultValueFactory = _ => "models",
    };

    private static readonly Option<string?> UrlOption = new("--url")
    {
        Description = "Store the baseline through this server's admin API (its admin port, e.g. http://localhost:8003); every replica on the same state store applies it.",
    };

    private static readonly Option<string?> TokenOption = new("--token")
    {
        Description = $"The admin token for --url (default: the {TokenVariable} environment variable).",
    };

    private static readonly Option<string?> OutOption = new("--out")
    {
        Description = "Write the baseline JSON to this file ('-': standard output). Without --url it goes to standard output.",
    };

    static OnboardCommand()
    {
        RowsOption.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is < 1 and var n)
                r.AddError($"--rows: expected a positive integer, got {n}.");
        });
        LineOption.Validators.Add(r =>
        {
            if (LineBaselineStore.LineProblem(r.GetValueOrDefault<string>()) is { } problem)
                r.AddError($"--line: {problem}");
        });
        UrlOption.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } url && AdminUrl(url) is null)
                r.AddError($"--url: expected an absolute http or https address such as http://localhost:8003, got '{url}'.");
        });
    }

    /// <summary>The command line as System.CommandLine parses it, with its help.</summary>
    public static RootCommand Create()
    {
        var root = new RootCommand(
            "A line's baseline from a CSV of its normal readings, computed with the model repository's files and the service's baseline library " +
            "(the numbers the admin API computes for the same rows); stored through a server's admin API (--url), or written out for review. " +
            "Exit codes: 0 stored or written, 1 refused (bad data, model, server answer: the message says which), 2 usage.")
        {
            CsvOption, LineOption, RowsOption, ModelOption, VersionOption, ModelsOption, UrlOption, TokenOption, OutOption,
        };
        return root;
    }

    /// <summary>Parses <paramref name="args"/> and runs; returns the exit code. <paramref name="input"/> is read for <c>--csv -</c>.</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextReader input, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var parsed = Create().Parse(args);
        if (parsed.Action is HelpAction)
            return await parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken).ConfigureAwait(false);
        if (parsed.Errors.Count > 0)
        {
            foreach (var problem in parsed.Errors)
                await error.WriteLineAsync(problem.Message).ConfigureAwait(false);
            await error.WriteLineAsync("Run with --help for the options.").ConfigureAwait(false);
            return UsageExitCode;
        }

        try
        {
            var csv = parsed.GetValue(CsvOption)!;
            var line = parsed.GetValue(LineOption)!;
            var model = parsed.GetValue(ModelOption)!;
            var baseline = Compute(parsed.GetValue(ModelsOption)!, model, parsed.GetValue(VersionOption), line, csv == "-" ? input : null, csv, parsed.GetValue(RowsOption));
            if (parsed.GetValue(UrlOption) is { } address)
            {
                var url = AdminUrl(address)!;
                var stored = await StoreAsync(url, parsed.GetValue(TokenOption) ?? Environment.GetEnvironmentVariable(TokenVariable), baseline, cancellationToken).ConfigureAwait(false);
                if (parsed.GetValue(OutOption) is { } copy)
                    await WriteAsync(stored, copy, output, cancellationToken).ConfigureAwait(false);
                await output.WriteLineAsync(FormattableString.Invariant(
                    $"line '{stored.Line}' of model '{stored.Model}' version {stored.ModelVersion}: revision {stored.Revision} stored through {url} ({stored.Rows} rows; thresholds {Thresholds(stored)}).")).ConfigureAwait(false);
                return 0;
            }

            await WriteAsync(baseline, parsed.GetValue(OutOption) ?? "-", output, cancellationToken).ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is OnboardingException or InferenceException or ModelFormatException or IOException or InvalidDataException
            or UnauthorizedAccessException or HttpRequestException or TaskCanceledException or ArgumentException)
        {
            await error.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return RefusedExitCode;
        }
    }

    /// <summary>
    /// The baseline of <paramref name="line"/> from the CSV's rows (the first <paramref name="rows"/> when set), for every
    /// variant of the model version's serving.json, each on the weights it runs on.
    /// </summary>
    public static LineBaseline Compute(string modelsDirectory, string model, string? version, string line, TextReader? input, string csvPath, int? rows)
    {
        using var cpu = new ConfiguredBackend(Options.Create(new SparseInferenceOptions { Device = ComputeDevice.CpuName }), [], NullLogger<ConfiguredBackend>.Instance);
        var loader = new EngineModelLoader(cpu, NullLogger<EngineModelLoader>.Instance);
        using var repository = new ModelRepository(modelsDirectory, loader, NullLogger<ModelRepository>.Instance);
        repository.Load(model);
        var resolved = repository.Resolve(model, version);
        var ownWeights = new List<IDisposable>();
        try
        {
            var weights = resolved.Manifest.Variants.ToDictionary(v => v.Name, v => v.Weights, StringComparer.Ordinal);
            var variants = resolved.Variants
                .OrderBy(v => v.Key, StringComparer.Ordinal)
                .Select(v =>
                {
                    if (weights.GetValueOrDefault(v.Key) is not { } own)
                        return new CalibrationVariant(v.Key, resolved.Model, v.Value);
                    var loaded = loader.Load(RepositoryVariantModelSource.ResolveWeightsDirectory(repository.Root, model, own));
                    if (loaded is IDisposable disposable)
                        ownWeights.Add(disposable);
                    return new CalibrationVariant(v.Key, loaded, v.Value);
                })
                .ToList();
            var target = CalibrationTarget.For(resolved, variants);
            return new BaselineCalibrator(TimeProvider.System).Calibrate(line, target, ReadRows(input, csvPath, target.Rule.Channels, rows));
        }
        finally
        {
            ownWeights.ForEach(o => o.Dispose());
        }
    }

    private static IReadOnlyList<double[]> ReadRows(TextReader? input, string csvPath, IReadOnlyList<string> channels, int? first)
    {
        using var file = input is null ? new StreamReader(csvPath, Encoding.UTF8, detectEncodingFromByteOrderMarks: true) : null;
        // No cap beyond --rows: the admin API's (SparseInference:Baselines:MaxOnboardingRows) protects a serving process.
        var rows = OnboardingData.ReadCsv(input ?? file!, channels, int.MaxValue);
        if (first is not { } count)
            return rows;
        return rows.Count >= count
            ? [.. rows.Take(count)]
            : throw new OnboardingException($"--rows {count.ToString(CultureInfo.InvariantCulture)}: the CSV holds {rows.Count.ToString(CultureInfo.InvariantCulture)} data rows.");
    }

    /// <summary>PUTs the baseline to the admin API as a computed baseline; the server answers with it as stored (its revision).</summary>
    private static async Task<LineBaseline> StoreAsync(Uri url, string? token, LineBaseline baseline, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(1) };
        if (!string.IsNullOrWhiteSpace(token))
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        // Each segment escaped, the line's '/' kept: the admin route takes the rest of the path as the line.
        var path = $"admin/models/{Uri.EscapeDataString(baseline.Model)}/baselines/{string.Join('/', baseline.Line.Split('/').Select(Uri.EscapeDataString))}";
        using var content = new StringContent(baseline.ToJson(), Encoding.UTF8, OnboardingData.BaselineMediaType);
        using var response = await http.PutAsync(path, content, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"PUT {new Uri(url, path)}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}: {ErrorOf(body)}");
        return LineBaseline.FromJson(Encoding.UTF8.GetBytes(body), $"the answer of {url}");
    }

    /// <summary>The message of the admin API's <c>{"error": "…"}</c> answer, else the body as it came.</summary>
    private static string ErrorOf(string body)
    {
        try
        {
            if (JsonNode.Parse(body) is JsonObject { } answer && answer["error"] is JsonValue error && error.TryGetValue<string>(out var message))
                return message;
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's page): shown as it is.
        }

        return body.Length == 0 ? "(no body)" : body;
    }

    /// <summary>The admin API's base address (a path prefix kept, as behind a proxy), or null when <paramref name="address"/> is not an http(s) URL.</summary>
    private static Uri? AdminUrl(string address) =>
        Uri.TryCreate(address, UriKind.Absolute, out var url) && url.Scheme is "http" or "https"
            ? new Uri(url.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/")
            : null;

    private static async Task WriteAsync(LineBaseline baseline, string path, TextWriter output, CancellationToken cancellationToken)
    {
        if (path == "-")
            await output.WriteLineAsync(baseline.ToJson()).ConfigureAwait(false);
        else
            await File.WriteAllTextAsync(path, baseline.ToJson() + "\n", cancellationToken).ConfigureAwait(false);
    }

    private static string Thresholds(LineBaseline baseline) =>
        string.Join(", ", baseline.Variants.Select(v => FormattableString.Invariant($"{v.Key} {v.Value.Threshold:0.#####}")));
}

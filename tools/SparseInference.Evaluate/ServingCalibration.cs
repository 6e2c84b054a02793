using System.Globalization;
using System.Text.Json;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.Repository;

namespace SparseInference.Evaluate;

/// <summary>One served variant and the threshold its point scores are compared with.</summary>
public sealed record VariantCalibration(string Name, string Pattern, double Sparsity, double Threshold, string ThresholdSource);

/// <summary>
/// What the evaluation takes from the model directory, as tools/train/eval_model_dir.py does: the detector from
/// <c>config.json</c> metadata (<c>window_length</c>, <c>score_positions</c>), the threshold without a line baseline —
/// a variant's own <c>anomaly_threshold</c> in <c>serving.json</c> (recalibrated for its pattern by the training
/// script), else the model's <c>anomaly_threshold</c> — and the line-baseline rule (<c>metadata.line_baseline</c>,
/// null when the model has none).
/// </summary>
public sealed record ServingCalibration(
    string Model, string Version, SkabDetector Detector, double ModelThreshold, IReadOnlyList<VariantCalibration> Variants, ModelConfiguration Configuration, BaselineRule? Rule)
{
    public static ServingCalibration Read(string modelDirectory, string? version = null)
    {
        var model = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDirectory)));
        var servingPath = Path.Combine(modelDirectory, "serving.json");
        using var serving = File.Exists(servingPath) ? JsonDocument.Parse(File.ReadAllBytes(servingPath)) : JsonDocument.Parse("{}");
        version ??= serving.RootElement.TryGetProperty("default_version", out var dv) && dv.ValueKind == JsonValueKind.String
            ? dv.GetString()!
            : HighestVersion(modelDirectory);

        var configPath = Path.Combine(modelDirectory, version, "config.json");
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"model config '{configPath}' does not exist.", configPath);
        var configBytes = File.ReadAllBytes(configPath);
        var configuration = ModelConfiguration.Parse(configBytes, configPath);
        var rule = BaselineRule.FromConfiguration(configuration, configPath);
        using var config = JsonDocument.Parse(configBytes);
        var root = config.RootElement;
        if (!root.TryGetProperty("anomaly_threshold", out var t) || t.ValueKind != JsonValueKind.Number)
            throw new InvalidDataException($"{configPath}: anomaly_threshold must be a number; the evaluation needs the model's calibrated threshold.");
        var modelThreshold = t.GetDouble();
        if (!root.TryGetProperty("metadata", out var metadata) || metadata.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{configPath}: metadata must be an object holding window_length and score_positions.");
        var window = RequiredInt(metadata, "window_length", configPath);
        var positions = RequiredInt(metadata, "score_positions", configPath);
        if (positions < 1 || positions > window)
            throw new InvalidDataException($"{configPath}: metadata.score_positions must be between 1 and window_length {window}, got {positions}.");

        var variants = new List<VariantCalibration>();
        if (serving.RootElement.TryGetProperty("variants", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var v in list.EnumerateArray())
            {
                var name = v.GetProperty("name").GetString() ?? throw new InvalidDataException($"{servingPath}: a variant has no name.");
                var pattern = v.TryGetProperty("pattern", out var p) ? p.GetString() ?? "dense" : "dense";
                var sparsity = v.TryGetProperty("sparsity", out var s) ? s.GetDouble() : 0.0;
                var own = v.TryGetProperty("anomaly_threshold", out var th) && th.ValueKind == JsonValueKind.Number;
                variants.Add(new VariantCalibration(name, pattern, sparsity, own ? th.GetDouble() : modelThreshold, own ? "serving.json" : "config.json"));
            }
        }
        if (variants.Count == 0)
        {
            var attention = root.GetProperty("attention");
            variants.Add(new VariantCalibration("default", attention.GetProperty("pattern").GetString() ?? "dense", attention.GetProperty("sparsity").GetDouble(), modelThreshold, "config.json"));
        }
        return new ServingCalibration(model, version, new SkabDetector(window, positions), modelThreshold, variants, configuration, rule);
    }

    /// <summary>The named variants in the given order; an unknown name is an error listing the known ones.</summary>
    public IReadOnlyList<VariantCalibration> Select(IReadOnlyList<string>? names)
    {
        if (names is null || names.Count == 0)
            return Variants;
        return [.. names.Select(n => Variants.FirstOrDefault(v => v.Name == n)
            ?? throw new ArgumentException($"--variants: model '{Model}' has no variant '{n}'; expected one of [{string.Join(", ", Variants.Select(v => v.Name))}]."))];
    }

    private static int RequiredInt(JsonElement metadata, string name, string source) =>
        metadata.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n >= 1
            ? n
            : throw new InvalidDataException($"{source}: metadata.{name} must be a positive integer.");

    private static string HighestVersion(string modelDirectory) =>
        Directory.EnumerateDirectories(modelDirectory)
            .Select(Path.GetFileName)
            .Where(n => long.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .OrderByDescending(n => long.Parse(n!, CultureInfo.InvariantCulture))
            .FirstOrDefault()
        ?? throw new DirectoryNotFoundException($"model directory '{modelDirectory}' has no numeric version folder.");
}

using System.Text.Json.Nodes;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.Baselines;

/// <summary>
/// The repository's shipped <c>models/skab-pump</c> version on the real engine, one SKAB line's raw rows (read from the
/// shared SKAB folder, never copied into the repository) and the numbers tools/train/baseline_fixture.py computed for
/// that line with PyTorch (tests/fixtures/baselines).
/// </summary>
public sealed class ShippedSkabModel : IDisposable
{
    public const string ModelName = "skab-pump";
    public const string FixtureFile = "skab-pump-valve1-0.json";

    private readonly ModelRepository _repository;
    private readonly Lazy<LineBaseline> _baseline;
    private readonly Lazy<(List<double[]> Rows, int[] Labels)> _line;

    public ShippedSkabModel()
    {
        Root = SkabFiles.RepositoryRoot;
        Fixture = JsonNode.Parse(File.ReadAllText(Path.Combine(Root, "tests", "fixtures", "baselines", FixtureFile)))!;
        Version = (string)Fixture["version"]!;
        _repository = CpuModelLoader.Repository(Path.Combine(Root, "models"));
        _repository.Load(ModelName);
        ModelVersion = _repository.Resolve(ModelName, Version);
        // Read on first use, so that without the SKAB data the tests that need its rows skip (or fail under CI) by name.
        _line = new(() => SkabFiles.Read(Path.Combine(SkabFiles.Directory(), (string)Fixture["line"]!)));
        _baseline = new(() => new BaselineCalibrator(new ManualTimeProvider()).Calibrate("pump-1", CalibrationTarget.For(ModelVersion), Onboarding));
    }

    public string Root { get; }

    public JsonNode Fixture { get; }

    public string Version { get; }

    public ModelVersion ModelVersion { get; }

    /// <summary>Every raw row of the fixture's SKAB line, in the model's channel order.</summary>
    public IReadOnlyList<double[]> Rows => _line.Value.Rows;

    public IReadOnlyList<int> Labels => _line.Value.Labels;

    public int OnboardingRows => (int)Fixture["onboarding_rows"]!;

    public IReadOnlyList<double[]> Onboarding => [.. Rows.Take(OnboardingRows)];

    /// <summary>The clock reading every <see cref="Baseline"/> carries.</summary>
    public static DateTimeOffset CalibratedAt => new ManualTimeProvider().GetUtcNow();

    /// <summary>Line <c>pump-1</c> onboarded on <see cref="Onboarding"/> with every variant of the version (computed once).</summary>
    public LineBaseline Baseline => _baseline.Value;

    public void Dispose()
    {
        _repository.Dispose();
    }

    public static double[] Doubles(JsonNode? array) => [.. array!.AsArray().Select(v => (double)v!)];
}

using System.Collections.Concurrent;
using System.Text.Json;
using SparseInference.Models.Configuration;
using SparseInference.Models.Formats;
using SparseInference.Models.Tests.Infrastructure;

namespace SparseInference.Models.Tests;

/// <summary>
/// Every golden case of tests/fixtures/golden (PyTorch reference, float64 expectations): the engine must reproduce
/// the output within the fixture tolerance, stay within 1e-4 max relative error, and report the exact pair counts.
/// </summary>
public sealed class GoldenFixtureTests
{
    private const double MaxRelativeError = 1e-4;
    private static readonly ConcurrentDictionary<string, EncoderModel> Models = new();
    private static readonly Lazy<GoldenSuite> Suite = new(GoldenSuite.Load);

    public static TheoryData<string> CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var id in Suite.Value.Cases.Keys.Order(StringComparer.Ordinal))
        {
            data.Add(id);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void Forward_GoldenCase_MatchesReferenceOutputAndPairs(string id)
    {
        var suite = Suite.Value;
        var golden = suite.Cases[id];
        var model = Models.GetOrAdd(golden.ModelDirectory, directory => EncoderModel.Load(directory));

        var result = model.Forward(golden.Input, golden.Attention);

        Assert.Equal(golden.OutputShape, result.Shape);
        Assert.Equal(golden.DensePairs, result.DensePairs);
        Assert.Equal(golden.ComputedPairs, result.ComputedPairs);
        Assert.Equal(golden.Expected.Length, result.Output.Length);
        double maxAbsDiff = 0, maxExpected = 0;
        for (int i = 0; i < golden.Expected.Length; i++)
        {
            double expected = golden.Expected[i], got = result.Output[i];
            double diff = Math.Abs(got - expected);
            Assert.True(diff <= suite.AbsoluteTolerance + suite.RelativeTolerance * Math.Abs(expected),
                $"{id}: element {i}: got {got}, expected {expected} (|diff| {diff:E3}).");
            maxAbsDiff = Math.Max(maxAbsDiff, diff);
            maxExpected = Math.Max(maxExpected, Math.Abs(expected));
        }

        double relative = maxAbsDiff / Math.Max(maxExpected, 1e-30);
        Assert.True(relative <= MaxRelativeError, $"{id}: max relative error {relative:E3} > {MaxRelativeError:E0}.");
    }

    [Fact]
    public void GoldenSuite_CoversEveryPatternWithPaddingAndAPartialBlock()
    {
        var cases = Suite.Value.Cases.Values.ToList();
        foreach (var pattern in AttentionSpec.KnownPatterns)
        {
            var ofPattern = cases.Where(c => c.Attention.Pattern == pattern).ToList();
            Assert.True(ofPattern.Select(c => c.Input.Time).Distinct().Count() >= 3, $"{pattern}: fewer than 3 sequence lengths.");
            Assert.Contains(ofPattern, c => c.Input.Time % c.Attention.BlockSize != 0);
            Assert.Contains(ofPattern, c => c.Input.Lengths!.Any(l => l < c.Input.Time));
        }
    }

    private sealed record GoldenCase(string ModelDirectory, ForwardInput Input, AttentionSpec Attention, int[] OutputShape, float[] Expected, long ComputedPairs, long DensePairs);

    private sealed class GoldenSuite
    {
        public required Dictionary<string, GoldenCase> Cases { get; init; }
        public required double AbsoluteTolerance { get; init; }
        public required double RelativeTolerance { get; init; }

        public static GoldenSuite Load()
        {
            string root = RepositoryPaths.GoldenFixtures;
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "cases.json")));
            var tolerance = doc.RootElement.GetProperty("tolerance");
            var cases = new Dictionary<string, GoldenCase>(StringComparer.Ordinal);
            foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
            {
                string id = c.GetProperty("id").GetString()!;
                string modelDir = Path.Combine(root, c.GetProperty("model").GetString()!);
                int batch = c.GetProperty("batch").GetInt32(), time = c.GetProperty("time").GetInt32();
                var a = c.GetProperty("attention");
                var spec = new AttentionSpec(a.GetProperty("pattern").GetString()!, a.GetProperty("sparsity").GetDouble(),
                    a.GetProperty("block_size").GetInt32(), a.GetProperty("global_blocks").GetInt32(), a.GetProperty("seed").GetUInt64());
                using var tensors = SafetensorsFile.Open(Path.Combine(root, c.GetProperty("tensors").GetString()!));
                var inputEntry = tensors.GetEntry("input");
                var lengths = tensors.ReadInt32("lengths");
                var expectedEntry = tensors.GetEntry("expected_output");
                var input = inputEntry.DType == SafetensorsDType.I32
                    ? new ForwardInput { Batch = batch, Time = time, TokenIds = tensors.ReadInt32("input"), Lengths = lengths }
                    : new ForwardInput { Batch = batch, Time = time, Values = tensors.ReadFloat32("input", inputEntry.Shape), Lengths = lengths };
                cases[id] = new GoldenCase(
                    modelDir,
                    input,
                    spec,
                    c.GetProperty("output_shape").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                    tensors.ReadFloat32("expected_output", expectedEntry.Shape),
                    c.GetProperty("computed_pairs").GetInt64(),
                    c.GetProperty("dense_pairs").GetInt64());
            }

            return new GoldenSuite
            {
                Cases = cases,
                AbsoluteTolerance = tolerance.GetProperty("abs").GetDouble(),
                RelativeTolerance = tolerance.GetProperty("rel").GetDouble(),
            };
        }
    }
}

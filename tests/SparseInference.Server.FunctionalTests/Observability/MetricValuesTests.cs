using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using SparseInference.Models;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Observability;

/// <summary>The exporter's numbers after known traffic: counts exact, histograms consistent, density as the engine computes it.</summary>
[Collection(ObservabilityCollection.Name)]
public sealed class MetricValuesTests(ObservabilityFixture server)
{
    private const int OkPerVariant = ObservabilityFixture.RestOk + ObservabilityFixture.GrpcOk;

    [Fact]
    public async Task Requests_KnownTraffic_CountsEveryOutcomeProtocolAndVariantExactly()
    {
        var traffic = await server.EnsureTrafficAsync();
        Assert.All(traffic.RestStatuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.All(traffic.InvalidStatuses, s => Assert.Equal(HttpStatusCode.BadRequest, s));
        Assert.All(traffic.GrpcStatuses, s => Assert.Equal(GrpcStatusCode.OK, s));

        var scrape = MetricsExposition.Parse(await server.ScrapeAsync());
        var model = ("model", ServerFixture.ModelName);
        foreach (var variant in ObservabilityFixture.Variants)
        {
            Assert.Equal(ObservabilityFixture.RestOk, scrape.Sum("sparseinference_requests_total", model, ("variant", variant), ("protocol", "rest"), ("outcome", "success")));
            Assert.Equal(ObservabilityFixture.GrpcOk, scrape.Sum("sparseinference_requests_total", model, ("variant", variant), ("protocol", "grpc"), ("outcome", "success")));
            Assert.Equal(OkPerVariant, scrape.Sum("sparseinference_variant_requests_total", model, ("variant", variant)));
        }

        // Invalid requests are refused while reading the input, before a variant is chosen: they carry variant="".
        var invalid = ObservabilityFixture.RestInvalid * ObservabilityFixture.Variants.Count;
        Assert.Equal(invalid, scrape.Sum("sparseinference_requests_total", model, ("protocol", "rest"), ("outcome", "invalid")));
        Assert.Equal(0, scrape.Sum("sparseinference_requests_total", model, ("protocol", "grpc"), ("outcome", "invalid")));
        Assert.Equal(invalid, scrape.Sum("sparseinference_rejections_total", model, ("reason", "invalid")));
        var total = invalid + OkPerVariant * ObservabilityFixture.Variants.Count;
        Assert.Equal(total, scrape.Sum("sparseinference_requests_total", model));
    }

    [Theory]
    [InlineData("sparseinference_request_duration_seconds")]
    [InlineData("sparseinference_compute_duration_seconds")]
    [InlineData("sparseinference_attention_density")]
    public async Task Histogram_KnownTraffic_CountAndInfBucketEqualRequestsAndBucketsAreCumulative(string histogram)
    {
        await server.EnsureTrafficAsync();
        var scrape = MetricsExposition.Parse(await server.ScrapeAsync());
        var model = ("model", ServerFixture.ModelName);
        foreach (var variant in ObservabilityFixture.Variants)
        {
            var labels = new[] { model, ("variant", variant) };
            Assert.Equal(OkPerVariant, scrape.Sum(histogram + "_count", labels));
            Assert.Equal(OkPerVariant, scrape.Sum(histogram + "_bucket", [.. labels, ("le", "+Inf")]));

            // Per series (one per label set): bucket counts never fall as le grows, and +Inf equals _count.
            foreach (var group in scrape.Where(histogram + "_bucket", labels).GroupBy(s => SeriesKey(s)))
            {
                var ordered = group.OrderBy(s => ParseLe(s.Labels["le"])).ToList();
                for (var i = 1; i < ordered.Count; i++)
                {
                    Assert.True(ordered[i].Value >= ordered[i - 1].Value, $"{histogram} {group.Key}: bucket le={ordered[i].Labels["le"]} ({ordered[i].Value}) below le={ordered[i - 1].Labels["le"]} ({ordered[i - 1].Value})");
                }

                var count = scrape.Samples.Single(s => s.Name == histogram + "_count" && SeriesKey(s) == group.Key);
                Assert.Equal(count.Value, ordered[^1].Value);
            }
        }
    }

    [Fact]
    public async Task AttentionDensity_KnownTraffic_EqualsComputedOverDensePairsOfTheEngine()
    {
        var traffic = await server.EnsureTrafficAsync();
        var scrape = MetricsExposition.Parse(await server.ScrapeAsync());
        var engine = EncoderModel.Load(Path.Combine(RepositoryPaths.Root, "models", ServerFixture.ModelName, "1"));
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "models", ServerFixture.ModelName, "serving.json")))!;
        foreach (var variant in ObservabilityFixture.Variants)
        {
            var entry = manifest["variants"]!.AsArray().Single(v => (string?)v!["name"] == variant)!;
            var spec = engine.Config.Attention with { Pattern = (string)entry["pattern"]!, Sparsity = (double)entry["sparsity"]! };
            var expected = 0d;
            for (var i = 0; i < ObservabilityFixture.RestOk; i++)
            {
                expected += ObservabilityFixture.ExpectedDensity(engine, spec, ObservabilityFixture.RestWindow(i), ObservabilityFixture.RestTime);
            }

            for (var i = 0; i < ObservabilityFixture.GrpcOk; i++)
            {
                expected += ObservabilityFixture.ExpectedDensity(engine, spec, ObservabilityFixture.GrpcWindow(i), ObservabilityFixture.GrpcTime);
            }

            var labels = new[] { ("model", ServerFixture.ModelName), ("variant", variant) };
            Assert.Equal(expected, scrape.Sum("sparseinference_attention_density_sum", labels), precision: 9);
            // The REST responses name the same pairs the engine computes for the same windows.
            var reported = traffic.ReportedPairs.Where(p => p.Variant == variant).ToList();
            var direct = engine.Forward(new ForwardInput { Batch = 1, Time = ObservabilityFixture.RestTime, Values = ObservabilityFixture.RestWindow(0) }, spec);
            Assert.All(reported, p => Assert.Equal((direct.ComputedPairs, direct.DensePairs), (p.Computed, p.Dense)));
            if (variant != "dense")
            {
                Assert.True(expected / OkPerVariant < 1, $"{variant}: expected a density below 1, actual {expected / OkPerVariant}");
            }
        }
    }

    [Fact]
    public async Task Gauges_KnownTraffic_ReportSparsityWorkingBuffersAndDeviceMemory()
    {
        await server.EnsureTrafficAsync();
        var scrape = MetricsExposition.Parse(await server.ScrapeAsync());
        var model = ("model", ServerFixture.ModelName);
        Assert.Equal(0, scrape.Sum("sparseinference_attention_configured_sparsity_ratio", model, ("variant", "dense")));
        Assert.Equal(0.75, scrape.Sum("sparseinference_attention_configured_sparsity_ratio", model, ("variant", "window-0.75")));
        var densePeak = scrape.Sum("sparseinference_buffers_peak_working_bytes", model, ("variant", "dense"));
        var windowPeak = scrape.Sum("sparseinference_buffers_peak_working_bytes", model, ("variant", "window-0.75"));
        Assert.True(densePeak > 0, "dense peak working buffers: expected > 0");
        Assert.True(windowPeak > 0 && windowPeak <= densePeak, $"window-0.75 peak working buffers: expected in (0, {densePeak}], actual {windowPeak}");
        var used = scrape.Where("sparseinference_device_memory_used_bytes", ("device", "cpu")).Single().Value;
        var total = scrape.Where("sparseinference_device_memory_total_bytes", ("device", "cpu")).Single().Value;
        Assert.InRange(used, 1, total);
        Assert.All(scrape.Where("sparseinference_requests_total"), s => Assert.True(s.Labels.ContainsKey("version"), "requests_total: expected a version label"));
    }

    private static string SeriesKey(MetricSample sample) =>
        string.Join(',', sample.Labels.Where(l => l.Key != "le").OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"));

    private static double ParseLe(string le) => le == "+Inf" ? double.PositiveInfinity : double.Parse(le, CultureInfo.InvariantCulture);
}

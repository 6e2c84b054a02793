using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Variants;

[Collection(ServerCollection.Name)]
public sealed class VariantServingTests(ServerFixture server)
{
    private const string Model = ServerFixture.BatchedName;
    private const int C = ServerFixture.BatchedChannels;

    [Fact]
    public async Task Infer_StickyLineId_KeepsEachLineOnOneVariant()
    {
        await PutSplit("""{"weights":{"dense":50,"window-0.5":50}}""");
        try
        {
            var values = SensorWindows.Make(1, 12, C);
            var seen = new Dictionary<string, string>();
            foreach (var line in Enumerable.Range(0, 12).Select(i => $"pump-{i}"))
            {
                var replies = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ =>
                    InferClient.InferAsync(server.Rest, Model, values, [1, 12, C], $"\"line_id\":\"{line}\"")));
                Assert.All(replies, r => Assert.Equal(HttpStatusCode.OK, r.Status));
                var variants = replies.Select(r => r.Variant).Distinct().ToList();
                Assert.Equal(replies.Select(r => r.VariantHeader).Distinct(), variants.Cast<string?>());
                seen[line] = Assert.Single(variants);
            }

            Assert.Equal(2, seen.Values.Distinct().Count());

            // The header carries the key when the parameter is absent; an explicit variant overrides routing.
            var byHeader = await InferClient.InferAsync(server.Rest, Model, values, [1, 12, C], headers: new Dictionary<string, string> { ["X-Routing-Key"] = "pump-3" });
            Assert.Equal(seen["pump-3"], byHeader.Variant);
            var other = seen["pump-3"] == "dense" ? "window-0.5" : "dense";
            var overridden = await InferClient.InferAsync(server.Rest, Model, values, [1, 12, C], $"\"line_id\":\"pump-3\",\"variant\":\"{other}\"");
            Assert.Equal(other, overridden.Variant);
            var unknown = await InferClient.InferAsync(server.Rest, Model, values, [1, 12, C], "\"variant\":\"nosuch\"");
            Assert.Equal(HttpStatusCode.BadRequest, unknown.Status);
            Assert.Contains("nosuch", unknown.Error);
        }
        finally
        {
            await PutSplit("""{"weights":{"dense":100}}""");
        }
    }

    [Fact]
    public async Task AdminApi_OnlyOnAdminPortWithToken()
    {
        Assert.Equal(HttpStatusCode.OK, (await server.Admin.GetAsync("/admin/models")).StatusCode);
        Assert.Contains(Model, await server.Admin.GetStringAsync("/admin/models"));

        using var anonymous = new HttpClient { BaseAddress = server.Admin.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/admin/models")).StatusCode);
        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong-token-wrong-token-wrong");
        Assert.Equal(HttpStatusCode.Forbidden, (await anonymous.GetAsync("/admin/models")).StatusCode);

        using var rest = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{server.RestPort}/admin/models");
        rest.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ServerFixture.AdminToken);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Rest.SendAsync(rest)).StatusCode);

        using var restVariants = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{server.RestPort}/admin/models/{Model}/variants");
        restVariants.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ServerFixture.AdminToken);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Rest.SendAsync(restVariants)).StatusCode);

        // On the gRPC port: no admin route answers (gRPC routes take POST only).
        using var h2 = new HttpClient();
        HttpRequestMessage OnGrpcPort(string path)
        {
            var message = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{server.GrpcPort}{path}")
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            };
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ServerFixture.AdminToken);
            return message;
        }

        using var grpcVariants = await h2.SendAsync(OnGrpcPort($"/admin/models/{Model}/variants"));
        Assert.Equal(HttpStatusCode.NotFound, grpcVariants.StatusCode);
        using var grpcModels = await h2.SendAsync(OnGrpcPort("/admin/models"));
        Assert.Equal(HttpStatusCode.NotFound, grpcModels.StatusCode);
        Assert.DoesNotContain(Model, await grpcModels.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Infer_SparsityChangedEvery100msUnderLoad_NoFailuresAndEachOutputMatchesItsSparsity()
    {
        const string variant = "swap";
        var levels = new[] { 0.25, 0.5, 0.75 };
        var values = SensorWindows.Make(1, 64, C, seed: 42);
        long[] shape = [1, 64, C];
        await PutVariant(variant, levels[0]);
        await PutSplit("{\"weights\":{\"dense\":0,\"" + variant + "\":100}}");
        try
        {
            // Reference per level, each run alone: a response is consistent when some level has its computed pairs and output.
            var reference = new List<(double Level, long Pairs, float[] Output)>();
            foreach (var level in levels)
            {
                await PutVariant(variant, level);
                var reply = await InferClient.InferAsync(server.Rest, Model, values, shape);
                Assert.Equal(HttpStatusCode.OK, reply.Status);
                Assert.Equal(variant, reply.Variant);
                reference.Add((level, reply.ComputedPairs, reply.Output));
            }

            // The levels must be told apart, else the check below could not fail.
            Assert.Equal(levels.Length, reference.Select(r => r.Pairs).Distinct().Count());

            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            var failures = new ConcurrentQueue<string>();
            var served = new ConcurrentDictionary<double, int>();
            var clients = Enumerable.Range(0, 8).Select(client => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var reply = await InferClient.InferAsync(server.Rest, Model, values, shape, $"\"line_id\":\"line-{client}\"");
                    if (reply.Status != HttpStatusCode.OK)
                    {
                        failures.Enqueue($"{reply.Status}: {reply.Error}");
                        continue;
                    }

                    var expected = reference.FirstOrDefault(r => r.Pairs == reply.ComputedPairs);
                    if (reply.Variant != variant || reply.VariantHeader != variant || expected.Output is null)
                    {
                        failures.Enqueue($"variant {reply.Variant} with {reply.ComputedPairs} computed pairs matches no level");
                        continue;
                    }

                    var output = reply.Output;
                    var worst = expected.Output.Zip(output, (a, b) => Math.Abs(a - b)).Max();
                    if (worst > 1e-5)
                    {
                        failures.Enqueue($"level {expected.Level}: output differs by {worst}");
                    }

                    served.AddOrUpdate(expected.Level, 1, (_, n) => n + 1);
                }
            })).ToList();

            var changes = 0;
            var clock = Stopwatch.StartNew();
            while (!stop.IsCancellationRequested)
            {
                await PutVariant(variant, levels[++changes % levels.Length]);
                var wait = TimeSpan.FromMilliseconds(100 * changes) - clock.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait);
                }
            }

            await Task.WhenAll(clients);
            Assert.Empty(failures);
            Assert.True(changes >= 50, $"only {changes} changes");
            Assert.Equal(levels.Length, served.Count);
            Assert.True(served.Values.Sum() >= 100, $"only {served.Values.Sum()} responses");
        }
        finally
        {
            await PutSplit("""{"weights":{"dense":100}}""");
            Assert.Equal(HttpStatusCode.OK, (await server.Admin.DeleteAsync($"/admin/models/{Model}/variants/{variant}")).StatusCode);
        }
    }

    private async Task PutSplit(string json)
    {
        var response = await server.Admin.PutAsync($"/admin/models/{Model}/split", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"split {json}: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private async Task PutVariant(string name, double sparsity)
    {
        var json = $$"""{"pattern":"window","blockSize":8,"sparsity":{{sparsity.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}""";
        var response = await server.Admin.PutAsync($"/admin/models/{Model}/variants/{name}", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Created, $"variant {json}: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }
}

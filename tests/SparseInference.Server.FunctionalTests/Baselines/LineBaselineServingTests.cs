using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Serving.State;
using SparseInference.Serving.Tests.Infrastructure;
using SparseInference.Testing;

namespace SparseInference.Server.FunctionalTests.Baselines;

/// <summary>
/// Line baselines held by the real server (docs/baselines.md): a line onboarded through the admin API is scored from raw
/// readings as the offline computation scores it (tools/train's PyTorch fixture), over REST and gRPC; bad onboarding data
/// is refused with the calibrator's message and leaves the line's baseline as it was; baselines that do not fit the
/// serving model are refused rather than silently skipped.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class LineBaselineServingTests(ServerFixture server)
{
    private const string Model = ServerFixture.ModelName;
    private const int Window = 64;
    private const string Csv = "text/csv";
    private const string Json = "application/json";

    [SkippableTheory]
    [InlineData("rest")]
    [InlineData("grpc")]
    public async Task OnboardSkabLine_ThroughAdminApi_RawReadingsScoredAsTheOfflineComputation(string protocol)
    {
        var fixture = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "tests", "fixtures", "baselines", "skab-pump-valve1-0.json")))!;
        var file = Path.Combine(SkabFiles.Directory(), (string)fixture["line"]!);
        var onboardingRows = (int)fixture["onboarding_rows"]!;
        // The file's own text, header and first rows, as a line's export comes: ';'-separated, a datetime column, label columns.
        var csv = string.Join('\n', File.ReadLines(file).Take(onboardingRows + 1)) + "\n";
        var line = $"valve1/0-{protocol}";

        var onboarded = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, line, csv);

        Assert.True(onboarded.Status == HttpStatusCode.OK, onboarded.ToString());
        try
        {
            Assert.Equal((1L, "\"1\""), (onboarded.Revision, onboarded.ETag));
            Assert.Equal(onboardingRows, (int)onboarded.Body!["rows"]!);
            var (rows, _) = SkabFiles.Read(file);
            var ends = fixture["test_ends"]!.AsArray().Select(e => (int)e!).ToArray();
            var raw = SyntheticLine.Windows(rows, ends, Window);
            foreach (var (variant, expected) in fixture["variants"]!.AsObject())
            {
                var threshold = (double)onboarded.Body!["variants"]![variant]!["threshold"]!;
                Assert.Equal((double)expected!["threshold"]!, threshold, 1e-6);
                var (score, anomaly, parameters) = protocol == "rest"
                    ? await InferRestAsync(raw, ends.Length, line, variant)
                    : await InferGrpcAsync(raw, ends.Length, line, variant);

                AssertClose(expected["scores"]!.AsArray().SelectMany(w => w!.AsArray().Select(v => (double)v!)).ToArray(), score, 1e-4);
                Assert.Equal(expected["flags"]!.AsArray().SelectMany(w => w!.AsArray().Select(f => (bool)f!)), anomaly);
                Assert.Equal(("line", line, 1L, threshold), ((string)parameters["baseline"]!, (string)parameters["baseline_line"]!, (long)parameters["baseline_revision"]!, (double)parameters["anomaly_threshold"]!));
            }

            Assert.Contains(true, fixture["variants"]!["dense"]!["flags"]!.AsArray().SelectMany(w => w!.AsArray().Select(f => (bool)f!)));
        }
        finally
        {
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, line);
        }
    }

    [Fact]
    public async Task Onboard_JsonRowsOrCsv_SameBaseline_ReplacedAsNextRevision_RemovedBackToNone()
    {
        const string line = "pump json-csv";
        var rows = SyntheticLine.Rows(400, seed: 3);
        var raw = SyntheticLine.Windows(SyntheticLine.Rows(600, seed: 3), [450, 599], Window);
        var before = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 2, Window, line);
        Assert.Equal(("none", HttpStatusCode.OK), (before.Baseline, before.Status));

        var fromJson = await LineBaselineRequests.PutAsync(server.Admin, Model, line, SyntheticLine.Json(rows), Json);
        var scoredJson = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 2, Window, line);
        var fromCsv = await LineBaselineRequests.PutAsync(server.Admin, Model, line, SyntheticLine.Csv(rows, ','), Csv, ifMatch: "\"1\"");
        var scoredCsv = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 2, Window, line);
        var listed = await LineBaselineRequests.ListAsync(server.Admin, Model);
        var removed = await LineBaselineRequests.DeleteAsync(server.Admin, Model, line, ifMatch: "\"2\"");
        var after = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 2, Window, line);
        var gone = await LineBaselineRequests.GetAsync(server.Admin, Model, line);

        Assert.True(fromJson.Status == HttpStatusCode.OK, fromJson.ToString());
        Assert.True(fromCsv.Status == HttpStatusCode.OK, fromCsv.ToString());
        Assert.Equal((1L, 2L), (fromJson.Revision, fromCsv.Revision));
        foreach (var field in new[] { "input_mean", "input_std", "variants" })
            Assert.Equal(fromJson.Body![field]!.ToJsonString(), fromCsv.Body![field]!.ToJsonString());
        Assert.Equal(("line", 1L), (scoredJson.Baseline, (long)scoredJson.Parameters["baseline_revision"]!));
        Assert.Equal(("line", 2L), (scoredCsv.Baseline, (long)scoredCsv.Parameters["baseline_revision"]!));
        Assert.Equal(scoredJson.Score, scoredCsv.Score);
        Assert.NotEqual(before.Score, scoredJson.Score);
        // With a baseline the reconstruction comes back in the line's raw units (voltage near 232 V), not standardized.
        Assert.InRange(scoredJson.Reconstruction.Where((_, i) => i % 8 == 6).Average(), 200, 260);
        Assert.InRange(before.Reconstruction.Where((_, i) => i % 8 == 6).Average(), -10, 10);
        var summary = listed.Body!.AsArray().Single(l => (string)l!["line"]! == line)!;
        Assert.Equal((2L, 2L, 400), ((long)summary["revision"]!, (long)summary["applied_revision"]!, (int)summary["rows"]!));
        Assert.Equal((double)fromCsv.Body!["variants"]!["dense"]!["threshold"]!, (double)summary["thresholds"]!["dense"]!);
        Assert.Equal(HttpStatusCode.NoContent, removed.Status);
        Assert.Equal("none", after.Baseline);
        Assert.Equal(before.Score, after.Score);
        Assert.Equal(HttpStatusCode.NotFound, gone.Status);
        Assert.Equal($"line '{line}' of model '{Model}' has no baseline; onboard it with PUT.", gone.Error);
    }

    public static TheoryData<string, string, string, string> BadOnboardingData => new()
    {
        { "too short", Csv, SyntheticLine.Csv(SyntheticLine.Rows(100)), "onboarding data: 100 rows, expected at least 256 (the model scores windows of 64 rows; its rule was validated with 400)." },
        { "constant channel", Json, SyntheticLine.Json(SyntheticLine.Rows(400).Select(r => r.Select((v, c) => c == 7 ? 32.0 : v).ToArray())),
            "onboarding data: channel 7 ('Volume Flow RateRMS') is constant (32 in all 400 rows); a baseline divides by each channel's deviation, so every channel must vary." },
        { "NaN in JSON", Json, NaNJson(123, 3),
            "onboarding data: row 123 channel 3 ('Pressure') is NaN; every value must be a finite number." },
        { "NaN in CSV", Csv, NaNCsv(7, 2), "onboarding data: row 7 channel 2 ('Current') is NaN; every value must be a finite number." },
        { "wrong channel count", Json, WrongCount(5),
            "onboarding data: row 5 has 7 values, expected 8 (one per channel: Accelerometer1RMS, Accelerometer2RMS, Current, Pressure, Temperature, Thermocouple, Voltage, Volume Flow RateRMS)." },
        { "missing column", Csv, SyntheticLine.Csv(SyntheticLine.Rows(400)).Replace(";Pressure;", ";Pressure2;", StringComparison.Ordinal),
            "onboarding data: the CSV header lacks channel [Pressure]; expected columns [Accelerometer1RMS, Accelerometer2RMS, Current, Pressure, Temperature, Thermocouple, Voltage, Volume Flow RateRMS] (others are ignored), got [datetime, Accelerometer1RMS, Accelerometer2RMS, Current, Pressure2, Temperature, Thermocouple, Voltage, Volume Flow RateRMS]." },
        { "not a number", Csv, NotANumber(), "onboarding data: CSV line 8 column 'Voltage': expected a number, got 'n/a'." },
        { "no rows", Json, "{\"readings\": []}", "onboarding data: expected {\"rows\": [[number, …], …]} with one array per reading holding 8 numbers (Accelerometer1RMS, Accelerometer2RMS, Current, Pressure, Temperature, Thermocouple, Voltage, Volume Flow RateRMS), got no 'rows'." },
    };

    [Theory]
    [MemberData(nameof(BadOnboardingData))]
    public async Task Onboard_BadData_RefusedWithTheCalibratorsMessage_ExistingBaselineKept(string problem, string mediaType, string body, string message)
    {
        var line = $"pump refused {problem}";
        var good = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, line, SyntheticLine.Csv(SyntheticLine.Rows(400, seed: 5)));
        Assert.True(good.Status == HttpStatusCode.OK, good.ToString());
        try
        {
            var refused = await LineBaselineRequests.PutAsync(server.Admin, Model, line, body, mediaType);

            Assert.Equal((HttpStatusCode.BadRequest, message), (refused.Status, refused.Error));
            var kept = await LineBaselineRequests.GetAsync(server.Admin, Model, line);
            Assert.Equal(good.Body!.ToJsonString(), kept.Body!.ToJsonString());
            var scored = await LineBaselineRequests.InferAsync(server.Rest, Model, SyntheticLine.Windows(SyntheticLine.Rows(300, seed: 5), [299], Window), 1, Window, line);
            Assert.Equal(("line", 1L), (scored.Baseline, (long)scored.Parameters["baseline_revision"]!));
        }
        finally
        {
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, line);
        }
    }

    [Theory]
    [InlineData("a line key far too long", 300, "line must be at most 256 characters, got 300.")]
    [InlineData("a line key too long for a file name", 50, "line must be at most 200 bytes once encoded as a file name (letters, digits, '-', '_' and '.' take one, other characters 3 per UTF-8 byte), got 300 for '")]
    public async Task Onboard_BadLineKey_RefusedAndNothingStored(string problem, int length, string message)
    {
        var line = new string(problem.Contains("far", StringComparison.Ordinal) ? 'x' : 'é', length);

        var refused = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, line, SyntheticLine.Csv(SyntheticLine.Rows(400)));

        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.StartsWith(message, refused.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(line, (await LineBaselineRequests.ListAsync(server.Admin, Model)).Body!.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Onboard_BodyLimitsAndContentType_RefusedNamingTheLimit()
    {
        var tooLarge = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, "pump-large", "datetime;" + new string('1', 9 * 1024 * 1024));
        var form = await LineBaselineRequests.PutAsync(server.Admin, Model, "pump-form", "rows=1", "application/x-www-form-urlencoded");
        var tooMany = await LineBaselineRequests.PutAsync(server.Admin, Model, "pump-many", SyntheticLine.Json(SyntheticLine.Rows(10_001)), Json);
        var unknownModel = await LineBaselineRequests.PutCsvAsync(server.Admin, "nosuch", "pump-1", SyntheticLine.Csv(SyntheticLine.Rows(400)));
        var noRule = await LineBaselineRequests.PutCsvAsync(server.Admin, ServerFixture.VersionedName, "pump-1", SyntheticLine.Csv(SyntheticLine.Rows(400)));

        Assert.Equal(
            (HttpStatusCode.RequestEntityTooLarge, "body: expected at most 8388608 bytes (SparseInference:Baselines:MaxOnboardingBodyBytes), actual more."),
            (tooLarge.Status, tooLarge.Error));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, form.Status);
        Assert.EndsWith("actual 'application/x-www-form-urlencoded'.", form.Error, StringComparison.Ordinal);
        Assert.Equal((HttpStatusCode.BadRequest, "onboarding data: more than 10000 rows; send at most 10000 (the rule was validated on a few hundred rows of normal operation)."), (tooMany.Status, tooMany.Error));
        Assert.Equal(HttpStatusCode.NotFound, unknownModel.Status);
        Assert.StartsWith("model: expected one of [", unknownModel.Error, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, noRule.Status);
        Assert.EndsWith("states no metadata.line_baseline (a reconstruction model on continuous input): it cannot be onboarded.", noRule.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminRoutes_NeedTheAdminTokenAndPort()
    {
        using var anonymous = new HttpClient { BaseAddress = server.Admin.BaseAddress };
        var path = LineBaselineRequests.PathOf(Model, "pump-1");

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/admin/models/{Model}/baselines")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PutAsync(path, new StringContent(SyntheticLine.Csv(SyntheticLine.Rows(400)), Encoding.UTF8, Csv))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Rest.GetAsync($"/admin/models/{Model}/baselines")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await LineBaselineRequests.GetAsync(server.Admin, Model, "pump-1")).Status);
    }

    [Fact]
    public async Task Inference_BaselineOfAnotherVersionInTheStore_RefusedTellingToOnboardAgain_OptOutStillServes()
    {
        const string line = "pump-old-version";
        var onboarded = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, line, SyntheticLine.Csv(SyntheticLine.Rows(400, seed: 7)));
        Assert.True(onboarded.Status == HttpStatusCode.OK, onboarded.ToString());
        var raw = SyntheticLine.Windows(SyntheticLine.Rows(300, seed: 7), [299], Window);
        try
        {
            // Another writer (an operator's copy, an older replica) stores a baseline computed with another version.
            var document = onboarded.Body!.AsObject();
            document["model_version"] = "9";
            document["revision"] = 2;
            await WriteDocumentAsync(line, document.ToJsonString(), expectedRevision: 1);

            var refused = await UntilAsync(() => LineBaselineRequests.InferAsync(server.Rest, Model, raw, 1, Window, line), r => r.Status != HttpStatusCode.OK);
            var optedOut = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 1, Window, line, "\"baseline\":\"none\"");
            var badOption = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 1, Window, line, "\"baseline\":\"off\"");

            Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
            Assert.Matches(
                $"^the baseline of line '{line}' \\(revision 2, created [^)]+\\) was computed with model 'skab-pump' version 9, but model 'skab-pump' version 1 serves this request: onboard the line again for it\\.$",
                refused.Error);
            Assert.Equal((HttpStatusCode.OK, "none"), (optedOut.Status, optedOut.Baseline));
            Assert.Equal((HttpStatusCode.BadRequest, "parameter 'baseline' must be the string 'line' or 'none', got string off."), (badOption.Status, badOption.Error));
        }
        finally
        {
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, line);
        }
    }

    [Fact]
    public async Task Inference_UnreadableStoredBaseline_RefusedNamingTheProblem_NotScoredWithoutIt()
    {
        const string line = "pump-unreadable";
        var raw = SyntheticLine.Windows(SyntheticLine.Rows(300, seed: 8), [299], Window);
        await WriteDocumentAsync(line, """{"revision": 1, "line": "pump-unreadable"}""", expectedRevision: 0);
        try
        {
            var refused = await UntilAsync(() => LineBaselineRequests.InferAsync(server.Rest, Model, raw, 1, Window, line), r => r.Status != HttpStatusCode.OK);
            var listed = await LineBaselineRequests.ListAsync(server.Admin, Model);
            var replaced = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, line, SyntheticLine.Csv(SyntheticLine.Rows(400, seed: 8)));
            var scored = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 1, Window, line);

            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.Status);
            Assert.StartsWith($"the baseline of line '{line}' of model '{Model}' cannot be read from the state store (baseline document {Model}/baselines/{line} in ", refused.Error, StringComparison.Ordinal);
            Assert.Contains("onboard the line again", refused.Error, StringComparison.Ordinal);
            Assert.Contains("baseline document", (string?)listed.Body!.AsArray().Single(l => (string)l!["line"]! == line)!["error"], StringComparison.Ordinal);
            Assert.True(replaced.Status == HttpStatusCode.OK, replaced.ToString());
            Assert.Equal(("line", 2L), (scored.Baseline, (long)scored.Parameters["baseline_revision"]!));
        }
        finally
        {
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, line);
        }
    }

    [Fact]
    public async Task ComputedBaseline_StoredAsItIs_Recalibrate_FromTheKeptRows()
    {
        const string onboardedLine = "pump-computed-a";
        const string computedLine = "pump-computed-b";
        var onboarded = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, onboardedLine, SyntheticLine.Csv(SyntheticLine.Rows(400, seed: 9)));
        Assert.True(onboarded.Status == HttpStatusCode.OK, onboarded.ToString());
        try
        {
            var computed = onboarded.Body!.AsObject();
            var wrongLine = await LineBaselineRequests.PutAsync(server.Admin, Model, computedLine, computed.ToJsonString(), "application/vnd.sparseinference.line-baseline+json");
            computed["line"] = computedLine;
            var stored = await LineBaselineRequests.PutAsync(server.Admin, Model, computedLine, computed.ToJsonString(), "application/vnd.sparseinference.line-baseline+json");
            var raw = SyntheticLine.Windows(SyntheticLine.Rows(300, seed: 9), [200, 299], Window);
            var scoredA = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 2, Window, onboardedLine);
            var scoredB = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 2, Window, computedLine);
            var recalibrated = await LineBaselineRequests.SendAsync(
                server.Admin, HttpMethod.Post, $"/admin/models/{Model}/baselines:recalibrate?line={Uri.EscapeDataString(onboardedLine)}&line={Uri.EscapeDataString(computedLine)}", null);
            var again = await LineBaselineRequests.GetAsync(server.Admin, Model, onboardedLine);

            Assert.Equal(HttpStatusCode.BadRequest, wrongLine.Status);
            Assert.Equal($"baseline: expected one of model '{Model}' line '{computedLine}' (the request's path), actual model '{Model}' line '{onboardedLine}'.", wrongLine.Error);
            Assert.True(stored.Status == HttpStatusCode.OK, stored.ToString());
            Assert.Equal((1L, (string?)onboarded.Body!["created_at"]), (stored.Revision, (string?)stored.Body!["created_at"]));
            Assert.Equal(scoredA.Score, scoredB.Score);
            Assert.Equal(computedLine, (string)scoredB.Parameters["baseline_line"]!);
            Assert.Equal(HttpStatusCode.OK, recalibrated.Status);
            Assert.Equal($$"""[{"line":"{{onboardedLine}}","revision":2,"model_version":"1"}]""", recalibrated.Body!["recalibrated"]!.ToJsonString());
            Assert.Equal(
                $"line '{computedLine}' of model '{Model}': its baseline was stored without its onboarding rows (computed elsewhere); onboard it again with its rows.",
                (string?)recalibrated.Body!["failed"]![0]!["error"]);
            Assert.Equal(onboarded.Body!["variants"]!.ToJsonString(), again.Body!["variants"]!.ToJsonString());
        }
        finally
        {
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, onboardedLine);
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, computedLine);
        }
    }

    [Fact]
    public async Task Metrics_BaselinesPerModel_AndRequestsScoredWithAndWithoutOne()
    {
        const string line = "pump-metrics";
        var onboarded = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, line, SyntheticLine.Csv(SyntheticLine.Rows(400, seed: 10)));
        Assert.True(onboarded.Status == HttpStatusCode.OK, onboarded.ToString());
        try
        {
            using var metrics = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.MetricsPort}") };
            var before = await metrics.GetStringAsync("/metrics");
            var raw = SyntheticLine.Windows(SyntheticLine.Rows(300, seed: 10), [299], Window);
            await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 1, Window, line);
            await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 1, Window, "pump-without-baseline");
            var after = await metrics.GetStringAsync("/metrics");

            Assert.True(Sample(after, "sparseinference_baselines{model=\"skab-pump\"}") >= 1, after);
            Assert.Equal(1, Sample(after, "sparseinference_baseline_requests_total{baseline=\"line\",model=\"skab-pump\"}") - (Sample(before, "sparseinference_baseline_requests_total{baseline=\"line\",model=\"skab-pump\"}") ?? 0));
            Assert.Equal(1, Sample(after, "sparseinference_baseline_requests_total{baseline=\"none\",model=\"skab-pump\"}") - (Sample(before, "sparseinference_baseline_requests_total{baseline=\"none\",model=\"skab-pump\"}") ?? 0));
        }
        finally
        {
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, line);
        }
    }

    private async Task<(float[] Score, bool[] Anomaly, JsonNode Parameters)> InferRestAsync(float[] raw, int batch, string line, string variant)
    {
        var reply = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, batch, Window, line, $"\"variant\":\"{variant}\"");
        Assert.True(reply.Status == HttpStatusCode.OK, reply.ToString());
        Assert.Equal(variant, (string)reply.Parameters["variant"]!);
        return (reply.Score, reply.Anomaly, reply.Parameters);
    }

    private async Task<(float[] Score, bool[] Anomaly, JsonNode Parameters)> InferGrpcAsync(float[] raw, int batch, string line, string variant)
    {
        var request = GrpcProtocolTests.RawRequest(raw, batch, Window);
        request.Parameters["line_id"] = new InferParameter { StringParam = line };
        request.Parameters["variant"] = new InferParameter { StringParam = variant };
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "score" });
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "anomaly" });

        var reply = (await server.Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser)).Single();

        Assert.Equal(["score", "anomaly"], reply.Outputs.Select(o => o.Name));
        var score = reply.RawOutputContents[0].ToByteArray();
        var parameters = new JsonObject();
        foreach (var (name, value) in reply.Parameters)
        {
            parameters[name] = value.ParameterChoiceCase switch
            {
                InferParameter.ParameterChoiceOneofCase.StringParam => value.StringParam,
                InferParameter.ParameterChoiceOneofCase.Int64Param => value.Int64Param,
                InferParameter.ParameterChoiceOneofCase.DoubleParam => value.DoubleParam,
                _ => value.ToString(),
            };
        }

        Assert.Equal(variant, (string)parameters["variant"]!);
        return (
            [.. Enumerable.Range(0, score.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(score.AsSpan(i * 4)))],
            [.. reply.RawOutputContents[1].ToByteArray().Select(b => b != 0)],
            parameters);
    }

    /// <summary>Writes a baseline document straight into the server's state directory, as another replica or an operator would.</summary>
    private async Task WriteDocumentAsync(string line, string json, long expectedRevision)
    {
        using var store = new DirectoryStateStore(server.StateDirectory, new StateStoreOptions(), TimeProvider.System, NullLogger<DirectoryStateStore>.Instance);
        var written = await store.WriteAsync(new StateDocumentId(Model, "baselines", line), Encoding.UTF8.GetBytes(json), expectedRevision);
        Assert.True(written.Written, $"state document {Model}/baselines/{line}: expected revision {expectedRevision} stored, actual {written.StoredRevision}");
    }

    /// <summary>Asks until <paramref name="done"/> holds; the server reads the store at least once a second (its poll interval).</summary>
    private static async Task<T> UntilAsync<T>(Func<Task<T>> ask, Func<T, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var answer = await ask();
            if (done(answer) || DateTime.UtcNow > deadline)
                return answer;
            await Task.Delay(50);
        }
    }

    private static string NaNJson(int row, int channel)
    {
        var rows = SyntheticLine.Rows(400).Select(r => r.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)).ToArray()).ToArray();
        rows[row][channel] = "\"NaN\"";
        return "{\"rows\":[" + string.Join(",", rows.Select(r => "[" + string.Join(",", r) + "]")) + "]}";
    }

    private static string NaNCsv(int row, int channel)
    {
        var lines = SyntheticLine.Csv(SyntheticLine.Rows(400)).Split('\n');
        var cells = lines[row + 1].Split(';');
        cells[channel + 1] = "NaN";
        lines[row + 1] = string.Join(';', cells);
        return string.Join('\n', lines);
    }

    private static string WrongCount(int row)
    {
        var rows = SyntheticLine.Rows(400);
        rows[row] = rows[row][..7];
        return SyntheticLine.Json(rows);
    }

    private static string NotANumber()
    {
        var lines = SyntheticLine.Csv(SyntheticLine.Rows(400)).Split('\n');
        var cells = lines[7].Split(';');
        cells[7] = "n/a";
        lines[7] = string.Join(';', cells);
        return string.Join('\n', lines);
    }

    private static double? Sample(string exposition, string series) =>
        exposition.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal)) is { } found
            ? double.Parse(found[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture)
            : null;

    private static void AssertClose(double[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * Math.Max(1, Math.Abs(expected[i])), $"element {i}: expected {expected[i]}, got {actual[i]}");
    }
}

using System.Net;
using System.Text.Json.Nodes;
using SparseInference.Onboard;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Testing;

namespace SparseInference.Server.FunctionalTests.Onboard;

/// <summary>
/// The offline onboarding tool (tools/SparseInference.Onboard) against the real server: for the same CSV it computes the
/// baseline the admin API computes, stores it through the admin API so that the line is scored as one onboarded there,
/// and refuses what the admin API refuses with the same message, storing nothing.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class OnboardCommandTests(ServerFixture server) : IDisposable
{
    private const string Model = ServerFixture.ModelName;
    private const int Window = 64;

    /// <summary>What a baseline's numbers are; <c>line</c>, <c>revision</c> and <c>created_at</c> say where and when it was stored.</summary>
    private static readonly string[] Computed = ["model", "model_version", "rows", "rule", "input_mean", "input_std", "variants"];

    private readonly string _directory = Directory.CreateTempSubdirectory("si-onboard-").FullName;

    [Fact]
    public async Task SameCsv_ToolComputesTheAdminApisBaseline_StoredThroughTheAdminApi_LineScoredAlike()
    {
        const string apiLine = "pump-offline-api";
        const string toolLine = "pump-offline/tool";
        var rows = SyntheticLine.Rows(450, seed: 31);
        // The export holds more than the onboarding stretch; --rows takes its first 400 rows, as the API gets them.
        var csv = WriteCsv("line.csv", SyntheticLine.Csv(rows));
        var viaApi = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, apiLine, SyntheticLine.Csv(rows.Take(400)));
        Assert.True(viaApi.Status == HttpStatusCode.OK, viaApi.ToString());
        try
        {
            var written = await RunAsync("", "--csv", csv, "--line", toolLine, "--rows", "400", "--models-dir", server.RepositoryRoot, "--out", Path.Combine(_directory, "baseline.json"));
            var stored = await RunAsync(
                File.ReadAllText(csv), "--csv", "-", "--line", toolLine, "--rows", "400", "--models-dir", server.RepositoryRoot,
                "--url", $"http://127.0.0.1:{server.AdminPort}", "--token", ServerFixture.AdminToken);

            Assert.True(written.Code == 0, written.ToString());
            var offline = JsonNode.Parse(File.ReadAllText(Path.Combine(_directory, "baseline.json")))!;
            Assert.Equal((toolLine, 0L), ((string)offline["line"]!, (long)offline["revision"]!));
            foreach (var field in Computed)
                Assert.Equal(viaApi.Body![field]!.ToJsonString(), offline[field]!.ToJsonString());

            Assert.True(stored.Code == 0, stored.ToString());
            Assert.StartsWith($"line '{toolLine}' of model '{Model}' version 1: revision 1 stored through http://127.0.0.1:{server.AdminPort}/ (400 rows; thresholds bigbird-0.75 ", stored.Output, StringComparison.Ordinal);
            var kept = await LineBaselineRequests.GetAsync(server.Admin, Model, toolLine);
            Assert.Equal((HttpStatusCode.OK, 1L), (kept.Status, kept.Revision));
            foreach (var field in Computed)
                Assert.Equal(viaApi.Body![field]!.ToJsonString(), kept.Body![field]!.ToJsonString());

            var raw = SyntheticLine.Windows(SyntheticLine.Rows(700, seed: 31), [420, 560, 699], Window);
            foreach (var variant in new[] { "dense", "block-topk-0.9" })
            {
                var scoredApi = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 3, Window, apiLine, $"\"variant\":\"{variant}\"");
                var scoredTool = await LineBaselineRequests.InferAsync(server.Rest, Model, raw, 3, Window, toolLine, $"\"variant\":\"{variant}\"");
                Assert.Equal(("line", toolLine, 1L), (scoredTool.Baseline, (string)scoredTool.Parameters["baseline_line"]!, (long)scoredTool.Parameters["baseline_revision"]!));
                Assert.Equal(scoredApi.Score, scoredTool.Score);
                Assert.Equal(scoredApi.Anomaly, scoredTool.Anomaly);
            }
        }
        finally
        {
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, apiLine);
            await LineBaselineRequests.DeleteAsync(server.Admin, Model, toolLine);
        }
    }

    [Fact]
    public async Task BadData_RefusedWithTheAdminApisMessage_NothingStored()
    {
        const string line = "pump-offline-constant";
        var csv = SyntheticLine.Csv(SyntheticLine.Rows(400, seed: 32).Select(r => r.Select((v, c) => c == 4 ? 79.1 : v).ToArray()));
        var viaApi = await LineBaselineRequests.PutCsvAsync(server.Admin, Model, line, csv);

        var refused = await RunAsync(csv, "--csv", "-", "--line", line, "--models-dir", server.RepositoryRoot, "--url", $"http://127.0.0.1:{server.AdminPort}", "--token", ServerFixture.AdminToken);
        var tooFew = await RunAsync(csv, "--csv", "-", "--line", line, "--rows", "401", "--models-dir", server.RepositoryRoot);

        Assert.Equal(HttpStatusCode.BadRequest, viaApi.Status);
        Assert.Equal("onboarding data: channel 4 ('Temperature') is constant (79.1 in all 400 rows); a baseline divides by each channel's deviation, so every channel must vary.", viaApi.Error);
        Assert.Equal((OnboardCommand.RefusedExitCode, viaApi.Error + Environment.NewLine, ""), (refused.Code, refused.Error, refused.Output));
        Assert.Equal((OnboardCommand.RefusedExitCode, "--rows 401: the CSV holds 400 data rows." + Environment.NewLine), (tooFew.Code, tooFew.Error));
        Assert.Equal(HttpStatusCode.NotFound, (await LineBaselineRequests.GetAsync(server.Admin, Model, line)).Status);
    }

    [Fact]
    public async Task AdminApiRefusal_ReportedWithTheServersStatusAndMessage_NothingStored()
    {
        const string line = "pump-offline-refused";
        var csv = WriteCsv("line.csv", SyntheticLine.Csv(SyntheticLine.Rows(400, seed: 33)));
        var admin = $"http://127.0.0.1:{server.AdminPort}";

        var wrongToken = await RunAsync("", "--csv", csv, "--line", line, "--models-dir", server.RepositoryRoot, "--url", admin, "--token", "not-the-token");
        // A model the tool finds on disk but the server does not serve.
        Directory.CreateDirectory(Path.Combine(_directory, "models"));
        ServerFixture.CopyDirectory(Path.Combine(server.RepositoryRoot, Model), Path.Combine(_directory, "models", "pump-elsewhere"));
        var unknownModel = await RunAsync("", "--csv", csv, "--line", line, "-m", "pump-elsewhere", "--models-dir", Path.Combine(_directory, "models"), "--url", admin, "--token", ServerFixture.AdminToken);

        Assert.Equal(OnboardCommand.RefusedExitCode, wrongToken.Code);
        Assert.StartsWith($"PUT {admin}/admin/models/{Model}/baselines/{line}: HTTP 403 Forbidden: authorization: the bearer token does not match the configured admin token", wrongToken.Error, StringComparison.Ordinal);
        Assert.Equal(OnboardCommand.RefusedExitCode, unknownModel.Code);
        Assert.StartsWith($"PUT {admin}/admin/models/pump-elsewhere/baselines/{line}: HTTP 404 Not Found: model: expected one of [", unknownModel.Error, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await LineBaselineRequests.GetAsync(server.Admin, Model, line)).Status);
    }

    [Theory]
    [InlineData("--line pump-1", "Option '--csv' is required.")]
    [InlineData("--csv a.csv --line pump-1 --rows 0", "--rows: expected a positive integer, got 0.")]
    [InlineData("--csv a.csv --line pump-1 --url localhost:8003", "--url: expected an absolute http or https address such as http://localhost:8003, got 'localhost:8003'.")]
    [InlineData("--csv a.csv --line pump-1 --state-dir /var/lib/state", "Unrecognized command or argument '--state-dir'.")]
    public async Task Usage_Refused_BeforeAnythingIsComputed(string args, string message)
    {
        var run = await RunAsync("", args.Split(' '));

        Assert.Equal(OnboardCommand.UsageExitCode, run.Code);
        Assert.Contains(message, run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_ListsTheOptions()
    {
        var run = await RunAsync("", "--help");

        Assert.Equal(0, run.Code);
        foreach (var option in new[] { "--csv", "--line", "--rows", "--model", "--model-version", "--models-dir", "--url", "--token", "--out" })
            Assert.Contains(option, run.Output, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string WriteCsv(string name, string csv)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, csv);
        return path;
    }

    private static async Task<ToolRun> RunAsync(string input, params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await OnboardCommand.RunAsync(args, new StringReader(input), output, error, CancellationToken.None);
        return new ToolRun(code, output.ToString(), error.ToString());
    }

    private sealed record ToolRun(int Code, string Output, string Error)
    {
        public override string ToString() => $"exit {Code}\nstdout: {Output}\nstderr: {Error}";
    }
}

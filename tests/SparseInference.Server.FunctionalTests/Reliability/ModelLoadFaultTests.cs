using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// Model load and swap faults through the repository API of the real server: a failing reload keeps the serving
/// version, names outside the repository are refused, only the model format's files are read, and load/unload
/// cycles give their memory back.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ModelLoadFaultTests(ServerFixture server)
{
    private const int Channels = 3;
    private const int Steps = 8;
    private static readonly string Golden = Path.Combine(RepositoryPaths.Root, "tests", "fixtures", "golden", "models", "tiny-continuous-sinusoidal");

    private HttpClient Rest => server.Rest;

    private static void BreakVersion(string fault, string dir)
    {
        var weights = Path.Combine(dir, "model.safetensors");
        switch (fault)
        {
            case "corrupt-weights":
                File.WriteAllBytes(weights, Encoding.ASCII.GetBytes("not a safetensors file at all"));
                break;
            case "missing-tensor":
                File.WriteAllBytes(weights, WithoutFirstTensor(File.ReadAllBytes(weights)));
                break;
            case "truncated-weights":
                var bytes = File.ReadAllBytes(weights);
                File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
                break;
            case "pytorch-weights-only":
                File.Move(weights, Path.Combine(dir, "pytorch_model.bin"));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(fault), fault, "unknown fault");
        }
    }

    [Theory]
    [InlineData("corrupt-weights")]
    [InlineData("missing-tensor")]
    [InlineData("truncated-weights")]
    [InlineData("pytorch-weights-only")]
    public async Task Reload_BrokenNewVersion_FailsAndKeepsServingVersionAndReadiness(string fault)
    {
        var name = "rel-fault-" + fault;
        var modelDir = PlantModel(name, "1");
        Assert.Equal(HttpStatusCode.OK, (await Load(name)).StatusCode);
        var before = await InferScores(name);

        var v2 = CopyGolden(Path.Combine(modelDir, "2"));
        BreakVersion(fault, v2);
        var failed = await Load(name);
        var text = await failed.Content.ReadAsStringAsync();
        Assert.True(failed.StatusCode == HttpStatusCode.BadRequest, $"reload with {fault}: expected 400, got {(int)failed.StatusCode}: {text}");
        Assert.Contains($"failed to load model '{name}'", JsonNode.Parse(text)!["error"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.OK, (await Rest.GetAsync($"/v2/models/{name}/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Rest.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(before, await InferScores(name));
        Assert.Equal(HttpStatusCode.NotFound, (await Rest.GetAsync($"/v2/models/{name}/versions/2/ready")).StatusCode);
    }

    [Theory]
    [InlineData("..%2Fx")]
    [InlineData("..")]
    [InlineData("%2Fetc")]
    [InlineData("%2Ftmp%2Fmodels")]
    [InlineData("a%2F..%2F..%2Fetc")]
    [InlineData("..%5C..%5Cx")]
    public async Task Load_NameOutsideRepository_RefusedAndServerStaysReady(string encodedName)
    {
        var response = await Load(encodedName);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"load '{encodedName}': {(int)response.StatusCode} {text}");
        Assert.Equal(HttpStatusCode.OK, (await Rest.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Rest.GetAsync($"/v2/models/{ServerFixture.ModelName}/ready")).StatusCode);
    }

    [Fact]
    public async Task Load_ForeignWeightFilesPlanted_LoadsFormatFilesOnlyAndNeverOpensTheOthers()
    {
        const string name = "rel-foreign-files";
        var dir = Path.Combine(PlantModel(name, "1"), "1");
        var planted = new[] { "model.pt", "model.bin", "pytorch_model.bin", "model.onnx", "weights.pkl" }.Select(f => Path.Combine(dir, f)).ToList();
        var past = DateTime.UtcNow.AddDays(-2);
        foreach (var file in planted)
        {
            // Garbage: reading any of these as weights would fail the load.
            File.WriteAllBytes(file, Encoding.ASCII.GetBytes("\x80\x02 not weights"));
            File.SetLastWriteTimeUtc(file, past.AddHours(1));
            File.SetLastAccessTimeUtc(file, past);
        }

        Assert.Equal(HttpStatusCode.OK, (await Load(name)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Rest.GetAsync($"/v2/models/{name}/ready")).StatusCode);
        await InferScores(name);

        // With relatime, a read updates an access time that is older than the modification time. Prove that on a
        // control file first, so the check below can fail.
        var control = Path.Combine(dir, "control.bin");
        File.WriteAllBytes(control, [1]);
        File.SetLastWriteTimeUtc(control, past.AddHours(1));
        File.SetLastAccessTimeUtc(control, past);
        _ = File.ReadAllBytes(control);
        if (File.GetLastAccessTimeUtc(control) > past.AddMinutes(1))
        {
            foreach (var file in planted)
            {
                Assert.True(File.GetLastAccessTimeUtc(file) < past.AddMinutes(1), $"{Path.GetFileName(file)} was read during the model load");
            }
        }
    }

    [Fact]
    public async Task LoadInferUnload_100Cycles_ManagedHeapReturnsToBaseline()
    {
        const string name = "rel-cycles";
        PlantModel(name, "1");
        const long toleranceBytes = 16L * 1024 * 1024;

        async Task Cycle()
        {
            Assert.Equal(HttpStatusCode.OK, (await Load(name)).StatusCode);
            await InferScores(name);
            Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/unload", null)).StatusCode);
        }

        for (var i = 0; i < 5; i++)
        {
            await Cycle();
        }

        var baseline = FullCollectHeapBytes();
        for (var i = 0; i < 100; i++)
        {
            await Cycle();
        }

        var after = FullCollectHeapBytes();
        Assert.True(after - baseline < toleranceBytes, $"managed heap grew by {(after - baseline) / 1024.0 / 1024.0:F1} MiB over 100 load/infer/unload cycles (baseline {baseline / 1024.0 / 1024.0:F1} MiB)");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await PostInfer(name)).StatusCode);
    }

    private static long FullCollectHeapBytes()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private string PlantModel(string name, string version)
    {
        var modelDir = Path.Combine(server.RepositoryRoot, name);
        CopyGolden(Path.Combine(modelDir, version));
        return modelDir;
    }

    private static string CopyGolden(string destination)
    {
        Directory.CreateDirectory(destination);
        File.Copy(Path.Combine(Golden, "model.safetensors"), Path.Combine(destination, "model.safetensors"), overwrite: true);
        File.Copy(Path.Combine(Golden, "config.json"), Path.Combine(destination, "config.json"), overwrite: true);
        return destination;
    }

    /// <summary>The same safetensors file with the first tensor's header entry removed (its bytes stay).</summary>
    private static byte[] WithoutFirstTensor(byte[] file)
    {
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = JsonNode.Parse(file.AsSpan(8, headerLength))!.AsObject();
        header.Remove(header.Select(p => p.Key).First(k => k != "__metadata__"));
        var newHeader = Encoding.UTF8.GetBytes(header.ToJsonString());
        var output = new byte[8 + newHeader.Length + file.Length - 8 - headerLength];
        BinaryPrimitives.WriteUInt64LittleEndian(output, (ulong)newHeader.Length);
        newHeader.CopyTo(output, 8);
        file.AsSpan(8 + headerLength).CopyTo(output.AsSpan(8 + newHeader.Length));
        return output;
    }

    private Task<HttpResponseMessage> Load(string encodedName) => server.Admin.PostAsync($"/v2/repository/models/{encodedName}/load", null);

    private Task<HttpResponseMessage> PostInfer(string name) =>
        Rest.PostAsync($"/v2/models/{name}/infer", new StringContent(
            SensorWindows.InferBody(SensorWindows.Json(SensorWindows.Make(1, Steps, Channels, seed: 3)), 1, Steps, Channels), Encoding.UTF8, "application/json"));

    private async Task<string> InferScores(string name)
    {
        var response = await PostInfer(name);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"infer on {name}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!["outputs"]!.ToJsonString();
    }
}

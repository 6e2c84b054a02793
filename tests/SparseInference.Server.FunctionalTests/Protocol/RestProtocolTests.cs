using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Protocol;

[Collection(ServerCollection.Name)]
public sealed class RestProtocolTests(ServerFixture server)
{
    private const string Model = ServerFixture.ModelName;
    private const int C = ServerFixture.Channels;

    private HttpClient Rest => server.Rest;

    [Fact]
    public async Task HealthLive_Always_Returns200Live()
    {
        var response = await Rest.GetAsync("/v2/health/live");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await Json(response))["live"]!.GetValue<bool>());
    }

    [Fact]
    public async Task HealthReady_AfterStart_Returns200Ready()
    {
        var response = await Rest.GetAsync("/v2/health/ready");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await Json(response))["ready"]!.GetValue<bool>());
    }

    [Fact]
    public async Task ServerMetadata_Get_NamesServerAndExtensions()
    {
        var body = await Json(await Rest.GetAsync("/v2"));
        Assert.Equal("sparseinference", body["name"]!.GetValue<string>());
        var extensions = body["extensions"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
        Assert.Contains("binary_tensor_data", extensions);
        Assert.Contains("statistics", extensions);
        Assert.Contains("model_repository", extensions);
    }

    [Fact]
    public async Task ModelMetadata_DefaultModel_DescribesTensorsVersionsAndVariants()
    {
        var body = await Json(await Rest.GetAsync($"/v2/models/{Model}"));
        Assert.Equal(Model, body["name"]!.GetValue<string>());
        Assert.Equal(["1"], body["versions"]!.AsArray().Select(v => v!.GetValue<string>()));
        var input = body["inputs"]![0]!;
        Assert.Equal("input", input["name"]!.GetValue<string>());
        Assert.Equal("FP32", input["datatype"]!.GetValue<string>());
        Assert.Equal([-1L, -1L, C], input["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
        Assert.Equal(["output", "score", "anomaly"], body["outputs"]!.AsArray().Select(o => o!["name"]!.GetValue<string>()));
        Assert.Equal("BOOL", body["outputs"]![2]!["datatype"]!.GetValue<string>());
        Assert.Equal(["dense", "window-0.75", "bigbird-0.75", "block-topk-0.75", "block-topk-0.9"], body["variants"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal("dense", body["default_variant"]!.GetValue<string>());
    }

    [Fact]
    public async Task ModelMetadata_Version2_DescribesItsRegressionHead()
    {
        var body = await Json(await Rest.GetAsync($"/v2/models/{ServerFixture.VersionedName}/versions/2"));
        Assert.Equal(["2", "1"], body["versions"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal(["output"], body["outputs"]!.AsArray().Select(o => o!["name"]!.GetValue<string>()));
        Assert.Equal([-1L, -1L, 2L], body["outputs"]![0]!["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
    }

    [Theory]
    [InlineData("/v2/models/nosuch", "nosuch")]
    [InlineData("/v2/models/nosuch/ready", "nosuch")]
    [InlineData("/v2/models/skab-pump/versions/9", "'9'")]
    [InlineData("/v2/models/sensor/versions/9/ready", "'9'")]
    public async Task ModelEndpoints_UnknownModelOrVersion_Return404NamingIt(string path, string named)
    {
        var response = await Rest.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains(named, (await Json(response))["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task ModelReady_LoadedVersion_Returns200Ready()
    {
        var response = await Rest.GetAsync($"/v2/models/{Model}/versions/1/ready");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await Json(response))["ready"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Infer_FlatJson_ReturnsOutputScoreAndAnomalyConsistentWithInput()
    {
        const int T = 20;
        var values = SensorWindows.Make(1, T, C);
        var response = await PostInfer(SensorWindows.InferBody(SensorWindows.Json(values), 1, T, C));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("dense", Assert.Single(response.Headers.GetValues("X-SparseInference-Variant")));
        var body = await Json(response);
        Assert.Equal("req-1", body["id"]!.GetValue<string>());
        Assert.Equal(Model, body["model_name"]!.GetValue<string>());
        Assert.Equal("1", body["model_version"]!.GetValue<string>());
        Assert.Equal("dense", body["parameters"]!["variant"]!.GetValue<string>());

        var outputs = body["outputs"]!.AsArray();
        var output = outputs.Single(o => o!["name"]!.GetValue<string>() == "output")!;
        Assert.Equal([1L, T, C], output["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
        var y = SensorWindows.Floats(output["data"]);
        Assert.Equal(T * C, y.Length);
        Assert.All(y, v => Assert.True(float.IsFinite(v)));

        var score = SensorWindows.Floats(outputs.Single(o => o!["name"]!.GetValue<string>() == "score")!["data"]);
        var anomaly = outputs.Single(o => o!["name"]!.GetValue<string>() == "anomaly")!["data"]!.AsArray().Select(a => a!.GetValue<bool>()).ToArray();
        Assert.Equal(T, score.Length);
        for (var t = 0; t < T; t++)
        {
            var expected = Enumerable.Range(0, C).Average(c => Math.Pow(y[t * C + c] - values[t * C + c], 2));
            Assert.Equal(expected, score[t], 4);
            Assert.Equal(score[t] > server.AnomalyThreshold, anomaly[t]);
        }
    }

    [Fact]
    public async Task Infer_NestedJson_EqualsFlatJson()
    {
        const int B = 2, T = 9;
        var values = SensorWindows.Make(B, T, C, seed: 3);
        var flat = await Json(await PostInfer(SensorWindows.InferBody(SensorWindows.Json(values), B, T, C)));
        var nested = await Json(await PostInfer(SensorWindows.InferBody(SensorWindows.NestedJson(values, B, T, C), B, T, C)));
        Assert.Equal(SensorWindows.Floats(flat["outputs"]![0]!["data"]), SensorWindows.Floats(nested["outputs"]![0]!["data"]));
        Assert.Equal([B, T, C], nested["outputs"]![0]!["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
    }

    [Fact]
    public async Task Infer_WindowVariant_ComputesFewerPairsAndNamesVariant()
    {
        const int T = 64;
        var values = SensorWindows.Make(1, T, C);
        var response = await PostInfer(SensorWindows.InferBody(SensorWindows.Json(values), 1, T, C, extra: "\"parameters\":{\"variant\":\"window-0.75\"},"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("window-0.75", Assert.Single(response.Headers.GetValues("X-SparseInference-Variant")));
        var parameters = (await Json(response))["parameters"]!;
        Assert.Equal("window-0.75", parameters["variant"]!.GetValue<string>());
        Assert.True(parameters["computed_pairs"]!.GetValue<long>() < parameters["dense_pairs"]!.GetValue<long>());
    }

    [Fact]
    public async Task Infer_UnknownVariant_Returns400ListingVariants()
    {
        var response = await PostInfer(SensorWindows.InferBody(SensorWindows.Json(SensorWindows.Make(1, 4, C)), 1, 4, C, extra: "\"parameters\":{\"variant\":\"nope\"},"));
        await AssertError(response, HttpStatusCode.BadRequest, "variant", "'nope'", "window-0.75");
    }

    [Fact]
    public async Task Infer_RequestedOutputOnly_ReturnsJustThatOutput()
    {
        var values = SensorWindows.Make(1, 5, C);
        var body = SensorWindows.InferBody(SensorWindows.Json(values), 1, 5, C).TrimEnd('}') + ",\"outputs\":[{\"name\":\"score\"}]}";
        var outputs = (await Json(await PostInfer(body)))["outputs"]!.AsArray();
        Assert.Equal("score", Assert.Single(outputs)!["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_BinaryInputAndOutputs_MatchJsonResults()
    {
        const int T = 12;
        var values = SensorWindows.Make(1, T, C, seed: 5);
        var jsonResult = await Json(await PostInfer(SensorWindows.InferBody(SensorWindows.Json(values), 1, T, C)));

        var header = Encoding.UTF8.GetBytes(
            $$$"""{"parameters":{"binary_data_output":true},"inputs":[{"name":"input","shape":[1,{{{T}}},{{{C}}}],"datatype":"FP32","parameters":{"binary_data_size":{{{values.Length * 4}}}}}]}""");
        var raw = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), values[i]);
        }

        var content = new ByteArrayContent([.. header, .. raw]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString());
        var response = await Rest.PostAsync($"/v2/models/{Model}/infer", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var headerLength = int.Parse(Assert.Single(response.Headers.GetValues("Inference-Header-Content-Length")));
        var bytes = await response.Content.ReadAsByteArrayAsync();
        var json = JsonNode.Parse(bytes.AsSpan(0, headerLength))!;
        var offset = headerLength;
        foreach (var output in json["outputs"]!.AsArray())
        {
            var size = output!["parameters"]!["binary_data_size"]!.GetValue<int>();
            Assert.Null(output["data"]);
            var name = output["name"]!.GetValue<string>();
            var expected = jsonResult["outputs"]!.AsArray().Single(o => o!["name"]!.GetValue<string>() == name)!["data"]!.AsArray();
            if (output["datatype"]!.GetValue<string>() == "BOOL")
            {
                Assert.Equal(expected.Select(e => e!.GetValue<bool>()), bytes.AsSpan(offset, size).ToArray().Select(b => b != 0));
            }
            else
            {
                var actual = Enumerable.Range(0, size / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(offset + i * 4)));
                Assert.Equal(expected.Select(e => e!.GetValue<float>()), actual);
            }

            offset += size;
        }

        Assert.Equal(bytes.Length, offset);
    }

    [Fact]
    public async Task Infer_BinarySizeBeyondBody_Returns400NamingSizes()
    {
        var header = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"input","shape":[1,2,8],"datatype":"FP32","parameters":{"binary_data_size":64}}]}""");
        var content = new ByteArrayContent([.. header, .. new byte[8]]);
        content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString());
        await AssertError(await Rest.PostAsync($"/v2/models/{Model}/infer", content), HttpStatusCode.BadRequest, "binary_data_size", "64", "8 bytes");
    }

    [Fact]
    public async Task Infer_WrongRank_Returns400NamingExpectedAndActualShape()
    {
        var body = """{"inputs":[{"name":"input","shape":[2,8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,1,2,3,4,5,6,7,8]}]}""";
        await AssertError(await PostInfer(body), HttpStatusCode.BadRequest, "input 'input'", "3 dimensions", "[-1, -1, 8]", "got 2 dimensions", "[2, 8]");
    }

    [Fact]
    public async Task Infer_WrongChannelCount_Returns400NamingDimension()
    {
        var body = SensorWindows.InferBody(SensorWindows.Json(new float[8]), 1, 2, 4);
        await AssertError(await PostInfer(body), HttpStatusCode.BadRequest, "input 'input'", "shape[2] must be 8", "got 4");
    }

    [Fact]
    public async Task Infer_WrongDatatype_Returns400NamingExpectedAndActual()
    {
        var body = SensorWindows.InferBody(SensorWindows.Json(new float[16]), 1, 2, C, datatype: "FP64");
        await AssertError(await PostInfer(body), HttpStatusCode.BadRequest, "input 'input'", "FP32", "'FP64'");
    }

    [Fact]
    public async Task Infer_DataLengthNotShapeProduct_Returns400NamingCounts()
    {
        var body = SensorWindows.InferBody(SensorWindows.Json(new float[5]), 1, 2, C);
        await AssertError(await PostInfer(body), HttpStatusCode.BadRequest, "input 'input'", "holds 5 elements", "expected 16", "[1, 2, 8]");
    }

    [Fact]
    public async Task Infer_UnknownInputName_Returns400NamingExpectedInputs()
    {
        var body = SensorWindows.InferBody(SensorWindows.Json(new float[16]), 1, 2, C, name: "x");
        await AssertError(await PostInfer(body), HttpStatusCode.BadRequest, "unknown input 'x'", "[input]");
    }

    [Fact]
    public async Task Infer_SequenceLongerThanMaxSeqLen_Returns400NamingLimit()
    {
        const int T = ServerFixture.MaxSeqLen + 1;
        var body = SensorWindows.InferBody(SensorWindows.Json(new float[T * C]), 1, T, C);
        await AssertError(await PostInfer(body), HttpStatusCode.BadRequest, "max_seq_len 512", $"got {T}");
    }

    [Fact]
    public async Task Infer_ElementCountOverflow_Returns400()
    {
        var body = """{"inputs":[{"name":"input","shape":[4294967296,4294967296,8],"datatype":"FP32","data":[1]}]}""";
        await AssertError(await PostInfer(body), HttpStatusCode.BadRequest, "input 'input'", "more than");
    }

    [Fact]
    public async Task Infer_NonNumberElement_Returns400NamingIndex()
    {
        var body = SensorWindows.InferBody("[1,2,\"NaN\",4,5,6,7,8,1,2,3,4,5,6,7,8]", 1, 2, C);
        await AssertError(await PostInfer(body), HttpStatusCode.BadRequest, "data[2]", "string", "FP32");
    }

    [Fact]
    public async Task Infer_MalformedJson_Returns400()
    {
        await AssertError(await PostInfer("{\"inputs\": [ {\"name\": "), HttpStatusCode.BadRequest, "malformed JSON");
    }

    [Fact]
    public async Task Infer_UnknownModel_Returns404()
    {
        var content = new StringContent(SensorWindows.InferBody(SensorWindows.Json(new float[16]), 1, 2, C), Encoding.UTF8, "application/json");
        await AssertError(await Rest.PostAsync("/v2/models/nosuch/infer", content), HttpStatusCode.NotFound, "'nosuch'");
    }

    [Fact]
    public async Task Infer_UnknownVersion_Returns404ListingVersions()
    {
        var content = new StringContent(SensorWindows.InferBody(SensorWindows.Json(new float[6]), 1, 2, 3), Encoding.UTF8, "application/json");
        await AssertError(await Rest.PostAsync($"/v2/models/{ServerFixture.VersionedName}/versions/7/infer", content), HttpStatusCode.NotFound, "'7'", "1, 2");
    }

    [Fact]
    public async Task Infer_TokenClassifier_ReturnsLogitsPerSequence()
    {
        var body = """{"inputs":[{"name":"input","shape":[2,4],"datatype":"INT64","data":[[1,2,3,4],[5,6,7,8]]}]}""";
        var content = new StringContent(body, Encoding.UTF8, "application/json");
        var response = await Rest.PostAsync($"/v2/models/{ServerFixture.ClassifierName}/infer", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var output = Assert.Single((await Json(response))["outputs"]!.AsArray())!;
        Assert.Equal("logits", output["name"]!.GetValue<string>());
        Assert.Equal([2L, 4L], output["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
    }

    [Fact]
    public async Task Infer_TokenOutOfVocabulary_Returns400NamingRange()
    {
        var body = """{"inputs":[{"name":"input","shape":[1,2],"datatype":"INT64","data":[1,11]}]}""";
        var content = new StringContent(body, Encoding.UTF8, "application/json");
        await AssertError(await Rest.PostAsync($"/v2/models/{ServerFixture.ClassifierName}/infer", content), HttpStatusCode.BadRequest, "data[1]", "11", "[0, 11)");
    }

    [Fact]
    public async Task ModelStats_AfterInfer_CountsSuccessAndBatchSize()
    {
        var before = await Json(await Rest.GetAsync($"/v2/models/{Model}/versions/1/stats"));
        var successBefore = before["model_stats"]![0]!["inference_stats"]!["success"]!["count"]!.GetValue<long>();
        Assert.Equal(HttpStatusCode.OK, (await PostInfer(SensorWindows.InferBody(SensorWindows.Json(SensorWindows.Make(3, 4, C)), 3, 4, C))).StatusCode);

        var after = await Json(await Rest.GetAsync($"/v2/models/{Model}/versions/1/stats"));
        var stats = Assert.Single(after["model_stats"]!.AsArray())!;
        Assert.Equal(Model, stats["name"]!.GetValue<string>());
        Assert.Equal("1", stats["version"]!.GetValue<string>());
        var inference = stats["inference_stats"]!;
        Assert.True(inference["success"]!["count"]!.GetValue<long>() > successBefore);
        Assert.True(inference["compute_infer"]!["ns"]!.GetValue<long>() > 0);
        foreach (var key in new[] { "fail", "queue", "compute_input", "compute_output" })
        {
            Assert.NotNull(inference[key]!["count"]);
        }

        Assert.Contains(stats["batch_stats"]!.AsArray(), b => b!["batch_size"]!.GetValue<long>() == 3);
    }

    [Fact]
    public async Task ModelStats_AfterBadInfer_CountsFailure()
    {
        var before = (await Json(await Rest.GetAsync($"/v2/models/{Model}/stats")))["model_stats"]!.AsArray()
            .Single(s => s!["version"]!.GetValue<string>() == "1")!["inference_stats"]!["fail"]!["count"]!.GetValue<long>();
        await PostInfer(SensorWindows.InferBody(SensorWindows.Json(new float[5]), 1, 2, C));
        var after = (await Json(await Rest.GetAsync($"/v2/models/{Model}/stats")))["model_stats"]!.AsArray()
            .Single(s => s!["version"]!.GetValue<string>() == "1")!["inference_stats"]!["fail"]!["count"]!.GetValue<long>();
        Assert.True(after > before);
    }

    [Fact]
    public async Task AllModelStats_Get_ListsEveryLoadedVersion()
    {
        var stats = (await Json(await Rest.GetAsync("/v2/models/stats")))["model_stats"]!.AsArray();
        Assert.Contains(stats, s => s!["name"]!.GetValue<string>() == Model && s["version"]!.GetValue<string>() == "1");
        Assert.Contains(stats, s => s!["name"]!.GetValue<string>() == ServerFixture.VersionedName && s["version"]!.GetValue<string>() == "2");
        Assert.Contains(stats, s => s!["name"]!.GetValue<string>() == ServerFixture.ClassifierName);
    }

    [Fact]
    public async Task RepositoryIndex_Post_ListsReadyAndBrokenModelsWithReason()
    {
        var index = (await Json(await Rest.PostAsync("/v2/repository/index", null))).AsArray();
        Assert.Contains(index, e => e!["name"]!.GetValue<string>() == Model && e["version"]!.GetValue<string>() == "1" && e["state"]!.GetValue<string>() == "READY");
        var broken = index.Single(e => e!["name"]!.GetValue<string>() == "broken")!;
        Assert.Equal("UNAVAILABLE", broken["state"]!.GetValue<string>());
        Assert.Contains("config.json", broken["reason"]!.GetValue<string>());

        var readyOnly = (await Json(await Rest.PostAsync("/v2/repository/index", new StringContent("{\"ready\":true}")))).AsArray();
        Assert.DoesNotContain(readyOnly, e => e!["name"]!.GetValue<string>() == "broken");
    }

    [Theory]
    [InlineData("..")]
    [InlineData("a..b%2F..")]
    [InlineData("%2Fetc")]
    [InlineData("skab-pump%2F1")]
    public async Task RepositoryLoad_NameEscapingRoot_Returns400(string name)
    {
        var response = await server.Admin.PostAsync($"/v2/repository/models/{name}/load", null);
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"got {response.StatusCode}");
        Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task RepositoryLoad_UnknownModel_Returns404()
    {
        await AssertError(await server.Admin.PostAsync("/v2/repository/models/nosuch/load", null), HttpStatusCode.NotFound, "'nosuch'");
    }

    [Fact]
    public async Task RepositoryUnloadThenLoad_Classifier_GoesUnavailableThenReady()
    {
        var name = ServerFixture.ClassifierName;
        Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/unload", null)).StatusCode);
        await AssertError(await Rest.GetAsync($"/v2/models/{name}/ready"), HttpStatusCode.ServiceUnavailable, "not ready", "unloaded");
        var index = (await Json(await Rest.PostAsync("/v2/repository/index", null))).AsArray();
        Assert.Equal("UNAVAILABLE", index.Single(e => e!["name"]!.GetValue<string>() == name)!["state"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/load", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Rest.GetAsync($"/v2/models/{name}/ready")).StatusCode);
    }

    [Fact]
    public async Task RepositoryLoad_ConfigOverride_ReplacesVariants()
    {
        var name = ServerFixture.ClassifierName;
        var config = """{"default_variant":"bigbird-half","variants":[{"name":"bigbird-half","pattern":"bigbird","sparsity":0.5}]}""";
        var body = new JsonObject { ["parameters"] = new JsonObject { ["config"] = config } }.ToJsonString();
        Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/load", new StringContent(body))).StatusCode);
        var metadata = await Json(await Rest.GetAsync($"/v2/models/{name}"));
        Assert.Equal("bigbird-half", metadata["default_variant"]!.GetValue<string>());

        var bad = new JsonObject { ["parameters"] = new JsonObject { ["config"] = """{"variants":[{"name":"x","pattern":"diagonal"}]}""" } }.ToJsonString();
        await AssertError(await server.Admin.PostAsync($"/v2/repository/models/{name}/load", new StringContent(bad)), HttpStatusCode.BadRequest, "'diagonal'", "window");

        Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/load", null)).StatusCode);
        Assert.Equal("default", (await Json(await Rest.GetAsync($"/v2/models/{name}")))["default_variant"]!.GetValue<string>());
    }

    [Fact]
    public async Task RestRoutes_OnMetricsPort_AreNotServed()
    {
        using var other = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.MetricsPort}") };
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync("/v2/health/live")).StatusCode);
    }

    private Task<HttpResponseMessage> PostInfer(string body) =>
        Rest.PostAsync($"/v2/models/{Model}/infer", new StringContent(body, Encoding.UTF8, "application/json"));

    private static async Task<JsonNode> Json(HttpResponseMessage response) => JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

    private static async Task AssertError(HttpResponseMessage response, HttpStatusCode status, params string[] fragments)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {status}, got {response.StatusCode}: {text}");
        var error = JsonNode.Parse(text)!["error"]!.GetValue<string>();
        foreach (var fragment in fragments)
        {
            Assert.Contains(fragment, error);
        }
    }
}

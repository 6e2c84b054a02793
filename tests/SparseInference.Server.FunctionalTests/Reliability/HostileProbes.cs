using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>How a probe presents itself to the admin port.</summary>
public enum Credential
{
    None,
    Wrong,
    Admin,
}

/// <summary>One request a hostile or careless client may send; generated, never hand-picked.</summary>
public abstract record Probe;

/// <summary>An inference over REST (JSON or binary tensor data) or gRPC, with whatever shape, values and parameters.</summary>
public sealed record InferProbe(
    bool Grpc, string Model, int Batch, int Time, int Channels, string Values, bool BinaryInput, bool BinaryOutput,
    string? Variant, long? Timeout, long? Priority, string? Output) : Probe
{
    /// <summary>Elements the shape calls for, when it is one the server could serve at all.</summary>
    public long Elements => Batch > 0 && Time > 0 && Channels > 0 ? (long)Batch * Time * Channels : -1;
}

/// <summary>A call on the variants admin API.</summary>
public sealed record AdminProbe(Credential Credential, string Method, string Path, string? Body) : Probe;

/// <summary>Model control or the repository index, on the inference port, over gRPC, or on the admin port.</summary>
public sealed record RepositoryProbe(string Port, Credential Credential, string Action, string Model, string? Override) : Probe;

/// <summary>FsCheck generators for <see cref="Probe"/>s: mostly plausible, with hostile numbers, names and paths mixed in.</summary>
public static class HostileProbes
{
    /// <summary>Models the probes name: served ones, ones that failed to load, and names that do not exist or escape.</summary>
    public static readonly string[] Models = [HostileServer.Model, FuzzQueue, FuzzControl, BadSequence, NanWeights, "nosuch", "..", "a%2F..%2Fb"];

    /// <summary>Names for the admin and repository routes: ".." is left out, HttpClient itself resolves it out of the path.</summary>
    public static readonly string[] RouteModels = [.. Models.Where(m => m != "..")];

    public const string FuzzQueue = "fuzz-queue";
    public const string FuzzControl = "fuzz-control";
    public const string BadSequence = "bad-sequence";
    public const string NanWeights = "nan-weights";

    private static readonly long[] HostileLongs = [-1, 0, 1, 1000, 3_600_000_000, 3_600_000_001, 1_000_000_000_000_000_000, long.MaxValue, long.MinValue];

    public static Gen<Probe[]> Bursts =>
        Gen.Choose(1, 6).SelectMany(n => Gen.ArrayOf(Probes, n));

    public static Gen<Probe> Probes => Gen.Frequency(
        (12, Infer.Select(p => (Probe)p)),
        (3, Admin.Select(p => (Probe)p)),
        (3, Repository.Select(p => (Probe)p)));

    public static Gen<InferProbe> Infer =>
        from grpc in Gen.Elements(false, true)
        from model in Gen.Frequency((10, Gen.Constant(HostileServer.Model)), (3, Gen.Constant(FuzzQueue)), (2, Gen.Constant(FuzzControl)), (2, Gen.Elements(Models)))
        from shape in Shapes
        from values in Gen.Frequency((8, Gen.Constant("normal")), (1, Gen.Constant("huge")), (1, Gen.Constant("max")), (1, Gen.Constant("nan")))
        from binaryInput in Gen.Elements(false, true)
        from binaryOutput in Gen.Elements(false, true)
        from variant in Gen.Frequency((6, Gen.Constant<string?>(null)), (2, Gen.Elements<string?>("dense", "window-0.75", "bigbird-0.75")), (1, Gen.Elements<string?>("nosuch", "DENSE", "", "../dense")))
        from timeout in Gen.Frequency((6, Gen.Constant<long?>(null)), (2, Gen.Choose(0, 5_000_000).Select(v => (long?)v)), (2, Gen.Elements(HostileLongs).Select(v => (long?)v)))
        from priority in Gen.Frequency((8, Gen.Constant<long?>(null)), (1, Gen.Elements<long?>(0, 1, 2)), (1, Gen.Elements(HostileLongs).Select(v => (long?)v)))
        from output in Gen.Frequency((6, Gen.Constant<string?>(null)), (2, Gen.Elements<string?>("output", "score", "anomaly")), (1, Gen.Elements<string?>("nosuch", "")))
        select new InferProbe(grpc, model, shape.Batch, shape.Time, shape.Channels, values, binaryInput, binaryOutput, variant, timeout, priority, output);

    /// <summary>Mostly short windows; now and then wide batches (the memory budget's business) or impossible shapes.</summary>
    private static Gen<(int Batch, int Time, int Channels)> Shapes => Gen.Frequency(
        (10, from b in Gen.Choose(1, 4) from t in Gen.Choose(1, 64) select (b, t, HostileServer.Channels)),
        (3, from b in Gen.Choose(1, 16) from t in Gen.Choose(65, HostileServer.MaxSeqLen) select (b, t, HostileServer.Channels)),
        (3, from b in Gen.Choose(64, 600) from t in Gen.Choose(16, 64) select (b, t, HostileServer.Channels)),
        (2, from b in Gen.Elements(0, -1, 1, 4000, int.MaxValue) from t in Gen.Elements(0, -3, 1, 513, 100_000) from c in Gen.Elements(0, 1, 7, 8, 9) select (b, t, c)));

    public static Gen<AdminProbe> Admin =>
        from credential in Gen.Frequency((6, Gen.Constant(Credential.Admin)), (1, Gen.Constant(Credential.None)), (1, Gen.Constant(Credential.Wrong)))
        from model in Gen.Frequency((4, Gen.Constant(FuzzControl)), (2, Gen.Constant(HostileServer.Model)), (1, Gen.Elements(RouteModels)))
        from call in Gen.OneOf(
            Splits.Select(body => ("PUT", $"/admin/models/{model}/split", (string?)body)),
            VariantBodies.SelectMany(body => Gen.Elements("cand", "window-0.75", "Bad", "x").Select(name => ("PUT", $"/admin/models/{model}/variants/{name}", (string?)body))),
            Gen.Elements("cand", "window-0.75", "dense", "nosuch").Select(name => ("DELETE", $"/admin/models/{model}/variants/{name}", (string?)null)),
            Gen.Elements("cand", "window-0.75", "dense").Select(name => ("POST", $"/admin/models/{model}/promote/{name}", (string?)null)),
            Gen.Constant(("POST", $"/admin/models/{model}/rollback", (string?)null)),
            Gen.Constant(("GET", $"/admin/models/{model}/variants", (string?)null)))
        select new AdminProbe(credential, call.Item1, call.Item2, call.Item3);

    private static Gen<string> Splits =>
        from weights in Gen.ListOf(
            from name in Gen.Elements("dense", "window-0.75", "cand", "nosuch")
            from weight in Gen.Elements("0", "1", "50", "1e308", "1e-300", "-5", "\"10\"")
            select $"\"{name}\":{weight}")
        from shadow in Gen.Frequency((3, Gen.Constant("")), (1, Gen.Elements(",\"shadow\":{\"variant\":\"window-0.75\",\"percent\":50}", ",\"shadow\":{\"variant\":\"cand\",\"percent\":1e9}", ",\"shadow\":{\"percent\":5}")))
        select $"{{\"weights\":{{{string.Join(",", weights.Distinct())}}}{shadow}}}";

    private static Gen<string> VariantBodies =>
        from pattern in Gen.Elements("dense", "window", "bigbird", "block-topk", "gated", "diagonal")
        from sparsity in Gen.Elements("0", "0.5", "0.99", "1", "-0.1", "1e300")
        from blockSize in Gen.Elements("", ",\"blockSize\":0", ",\"blockSize\":8", ",\"blockSize\":4097", ",\"blockSize\":2147483647")
        from globalBlocks in Gen.Elements("", ",\"globalBlocks\":-1", ",\"globalBlocks\":2", ",\"globalBlocks\":5000")
        from weights in Gen.Elements("", ",\"weights\":\"default\"", ",\"weights\":\"/etc\"", ",\"weights\":\"../../..\"", ",\"weights\":\"1\"", ",\"weights\":\"\"")
        select $"{{\"pattern\":\"{pattern}\",\"sparsity\":{sparsity}{blockSize}{globalBlocks}{weights}}}";

    public static Gen<RepositoryProbe> Repository =>
        from port in Gen.Frequency((5, Gen.Constant("admin")), (2, Gen.Constant("rest")), (1, Gen.Constant("grpc")))
        from credential in Gen.Frequency((6, Gen.Constant(Credential.Admin)), (1, Gen.Constant(Credential.None)), (1, Gen.Constant(Credential.Wrong)))
        from action in Gen.Frequency((4, Gen.Constant("load")), (2, Gen.Constant("unload")), (1, Gen.Constant("index")))
        from model in Gen.Frequency((6, Gen.Constant(FuzzControl)), (2, Gen.Constant(FuzzQueue)), (1, Gen.Elements(BadSequence, NanWeights, "nosuch", "a%2F..%2Fb")))
        from manifest in Gen.Frequency((2, Gen.Constant<string?>(null)), (5, Overrides.Select(o => (string?)o)))
        select new RepositoryProbe(port, credential, action, model, manifest);

    /// <summary>serving.json overrides: variant lists the registry may refuse, weights paths, batching numbers of any size.</summary>
    private static Gen<string> Overrides =>
        from variants in Gen.ListOf(
            from name in Gen.Elements("dense", "window-0.5", "Dense", "", new string('v', 70), "ok-1")
            from pattern in Gen.Elements("dense", "window", "bigbird", "diagonal")
            from sparsity in Gen.Elements("0", "0.5", "1.5")
            from extra in Gen.Elements("", ",\"global_blocks\":-1", ",\"global_blocks\":100000", ",\"block_size\":100000", ",\"weights\":\"/etc\"", ",\"weights\":\"../../../..\"", ",\"weights\":\"1\"")
            select $"{{\"name\":\"{name}\",\"pattern\":\"{pattern}\",\"sparsity\":{(pattern == "dense" ? "0" : sparsity)}{extra}}}")
        from batching in Gen.ListOf(
            from key in Gen.Elements("max_batch_size", "max_queue_delay_microseconds", "max_queue_delay_ms", "priority_levels", "workers", "max_padding_waste", "preferred_batch_size")
            from value in Gen.Elements("0", "1", "4", "64", "1025", "1e6", "1e300", "-1", "0.5", "\"x\"")
            select key == "preferred_batch_size" ? $"\"{key}\":[{value}]" : $"\"{key}\":{value}")
        from queue in Gen.Elements("", ",\"default_queue_policy\":{\"max_queue_size\":2}", ",\"default_queue_policy\":{\"max_queue_size\":2000000000}", ",\"default_queue_policy\":{\"default_timeout_microseconds\":1e18}")
        select $"{{\"variants\":[{string.Join(",", variants)}],\"batching\":{{{string.Join(",", batching.DistinctBy(b => b.Split(':')[0]))}}}{queue}}}";

    /// <summary>The probe's input values: a smooth signal, or magnitudes that overflow inside the model, or NaN.</summary>
    public static float[] Values(InferProbe probe, int count)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = probe.Values switch
            {
                "huge" => 1e20f,
                "max" => 3e38f,
                "nan" => i == count / 2 ? float.NaN : 0.5f,
                _ => MathF.Sin(0.3f * i),
            };
        }

        return values;
    }

    /// <summary>The REST request: JSON (data inline) or binary tensor data after a JSON header.</summary>
    public static HttpContent RestBody(InferProbe probe)
    {
        var count = (int)Math.Clamp(probe.Elements, 1, 4_000_000);
        if (probe.Elements < 0 || probe.Elements > 4_000_000)
        {
            count = 16; // a shape the server must refuse; the data does not matter
        }

        var values = Values(probe, count);
        var parameters = new JsonObject();
        if (probe.Variant is not null)
        {
            parameters["variant"] = probe.Variant;
        }

        if (probe.Timeout is { } timeout)
        {
            parameters["timeout"] = timeout;
        }

        if (probe.Priority is { } priority)
        {
            parameters["priority"] = priority;
        }

        if (probe.BinaryOutput)
        {
            parameters["binary_data_output"] = true;
        }

        var input = new JsonObject
        {
            ["name"] = "input",
            ["shape"] = new JsonArray(probe.Batch, probe.Time, probe.Channels),
            ["datatype"] = "FP32",
        };
        var binaryInput = probe.BinaryInput || probe.Values == "nan";
        if (binaryInput)
        {
            input["parameters"] = new JsonObject { ["binary_data_size"] = count * 4 };
        }

        var request = new JsonObject { ["id"] = "fuzz", ["parameters"] = parameters, ["inputs"] = new JsonArray(input) };
        if (probe.Output is not null)
        {
            request["outputs"] = new JsonArray(new JsonObject { ["name"] = probe.Output });
        }

        if (!binaryInput)
        {
            var json = request.ToJsonString();
            var data = "[" + string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]";
            json = json.Replace("\"datatype\":\"FP32\"", "\"datatype\":\"FP32\",\"data\":" + data, StringComparison.Ordinal);
            return new StringContent(json, Encoding.UTF8, "application/json");
        }

        var header = Encoding.UTF8.GetBytes(request.ToJsonString());
        var body = new byte[header.Length + (count * 4)];
        header.CopyTo(body, 0);
        for (var i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(body.AsSpan(header.Length + (i * 4)), values[i]);
        }

        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString(CultureInfo.InvariantCulture));
        return content;
    }
}

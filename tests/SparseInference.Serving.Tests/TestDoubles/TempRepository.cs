using System.Text.Json.Nodes;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Tests.TestDoubles;

/// <summary>A model repository in a temporary directory, with config.json files for <see cref="ScaledEchoLoader"/>.</summary>
internal sealed class TempRepository : IDisposable
{
    public TempRepository() => Root = Directory.CreateTempSubdirectory("si-repo-test-").FullName;

    public string Root { get; }

    public TempRepository AddVersion(string model, string version, int channels = 2, int maxSeqLen = 8, double? threshold = 0.1, string head = "reconstruction")
    {
        var dir = Path.Combine(Root, model, version);
        Directory.CreateDirectory(dir);
        var config = new JsonObject
        {
            ["format"] = "sparseinference-encoder",
            ["format_version"] = 1,
            ["input_kind"] = "continuous",
            ["input_channels"] = channels,
            ["d_model"] = 4,
            ["n_heads"] = 1,
            ["n_layers"] = 1,
            ["max_seq_len"] = maxSeqLen,
            ["head"] = head,
            ["output_dim"] = channels,
            ["gated"] = false,
            ["anomaly_threshold"] = threshold,
        };
        File.WriteAllText(Path.Combine(dir, ModelRepository.ConfigFileName), config.ToJsonString());
        File.WriteAllBytes(Path.Combine(dir, ModelRepository.WeightsFileName), []);
        return this;
    }

    public TempRepository WithServing(string model, string json)
    {
        File.WriteAllText(Path.Combine(Root, model, ServingManifest.FileName), json);
        return this;
    }

    public ModelRepository Open(IInferenceModelLoader? loader = null) =>
        new(Root, loader ?? new ScaledEchoLoader(), Microsoft.Extensions.Logging.Abstractions.NullLogger<ModelRepository>.Instance);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}

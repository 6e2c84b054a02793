using System.Text.Json;

namespace SparseInference.Models.Formats;

/// <summary>
/// Writes a continuous-input, sinusoidal, reconstruction model directory with reproducible random FP32 weights
/// (PyTorch-default-like init), for benchmarks and kernel tests at sizes the golden fixtures do not cover.
/// </summary>
public static class RandomModelWriter
{
    public static void Write(string directory, int inputChannels, int dModel, int heads, int layers, int dFf, int maxSeqLen, int outputDim, int seed)
    {
        Directory.CreateDirectory(directory);
        var random = new Random(seed);
        var tensors = new List<(string, int[], float[])>();
        float[] Uniform(int count, double bound) => Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2 - 1) * bound)).ToArray();
        void Linear(string name, int outFeatures, int inFeatures)
        {
            double bound = 1.0 / Math.Sqrt(inFeatures);
            tensors.Add(($"{name}.weight", [outFeatures, inFeatures], Uniform(outFeatures * inFeatures, bound)));
            tensors.Add(($"{name}.bias", [outFeatures], Uniform(outFeatures, bound)));
        }

        void Norm(string name)
        {
            tensors.Add(($"{name}.weight", [dModel], Enumerable.Range(0, dModel).Select(_ => 1f + (float)((random.NextDouble() - 0.5) * 0.2)).ToArray()));
            tensors.Add(($"{name}.bias", [dModel], Uniform(dModel, 0.1)));
        }

        Linear("input_proj", dModel, inputChannels);
        for (int i = 0; i < layers; i++)
        {
            Norm($"layers.{i}.ln1");
            Linear($"layers.{i}.attn.qkv", 3 * dModel, dModel);
            Linear($"layers.{i}.attn.out", dModel, dModel);
            Norm($"layers.{i}.ln2");
            Linear($"layers.{i}.ff1", dFf, dModel);
            Linear($"layers.{i}.ff2", dModel, dFf);
        }

        Norm("final_ln");
        Linear("head", outputDim, dModel);
        SafetensorsFile.WriteFloat32(Path.Combine(directory, "model.safetensors"), tensors);

        using var stream = File.Create(Path.Combine(directory, "config.json"));
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("format", "sparseinference-encoder");
        json.WriteNumber("format_version", 1);
        json.WriteString("input_kind", "continuous");
        json.WriteNumber("input_channels", inputChannels);
        json.WriteNumber("vocab_size", 0);
        json.WriteNumber("d_model", dModel);
        json.WriteNumber("n_heads", heads);
        json.WriteNumber("n_layers", layers);
        json.WriteNumber("d_ff", dFf);
        json.WriteNumber("max_seq_len", maxSeqLen);
        json.WriteString("positional", "sinusoidal");
        json.WriteNumber("layer_norm_eps", 1e-5);
        json.WriteString("head", "reconstruction");
        json.WriteNumber("output_dim", outputDim);
        json.WriteBoolean("gated", false);
        json.WriteStartObject("attention");
        json.WriteString("pattern", "dense");
        json.WriteNumber("sparsity", 0.0);
        json.WriteNumber("block_size", 64);
        json.WriteNumber("global_blocks", 1);
        json.WriteNumber("seed", 0);
        json.WriteEndObject();
        json.WriteNull("anomaly_threshold");
        json.WriteStartObject("metadata");
        json.WriteString("note", "random weights");
        json.WriteNumber("seed", seed);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}

using System.Text.Json.Serialization;

namespace SparseInference.Serving.Baselines;

/// <summary>The JSON form of a line baseline (snake_case names, as the model files use), source-generated.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = false,
    NumberHandling = JsonNumberHandling.Strict,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(LineBaseline))]
internal sealed partial class BaselineJsonContext : JsonSerializerContext;

using System.Text.Json.Serialization;

namespace SparseInference.Serving.Repository;

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    NumberHandling = JsonNumberHandling.AllowReadingFromString)]
[JsonSerializable(typeof(ModelConfiguration))]
[JsonSerializable(typeof(ServingManifest))]
internal sealed partial class RepositoryJsonContext : JsonSerializerContext;

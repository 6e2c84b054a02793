using System.Text.Json.Serialization;
using SparseInference.Serving;
using SparseInference.Serving.Protocol;

namespace SparseInference.Server.Rest;

internal sealed record ErrorBody(string Error);
internal sealed record LiveBody(bool Live);
internal sealed record ReadyBody(bool Ready);
internal sealed record ModelReadyBody(string Name, string Version, bool Ready);
internal sealed record ServerMetadataBody(string Name, string Version, IReadOnlyList<string> Extensions);
internal sealed record TensorMetadataBody(string Name, string Datatype, long[] Shape);
internal sealed record ModelMetadataBody(
    string Name,
    IReadOnlyList<string> Versions,
    string Platform,
    IReadOnlyList<TensorMetadataBody> Inputs,
    IReadOnlyList<TensorMetadataBody> Outputs,
    IReadOnlyList<string> Variants,
    string DefaultVariant);
internal sealed record RepositoryIndexRequestBody(bool? Ready);
internal sealed record RepositoryIndexEntryBody(string Name, string Version, string State, string Reason);
internal sealed record DurationBody(long Count, long Ns);
internal sealed record InferenceStatsBody(
    DurationBody Success, DurationBody Fail, DurationBody Queue, DurationBody ComputeInput, DurationBody ComputeInfer,
    DurationBody ComputeOutput, DurationBody CacheHit, DurationBody CacheMiss);
internal sealed record BatchStatsBody(long BatchSize, DurationBody ComputeInput, DurationBody ComputeInfer, DurationBody ComputeOutput);
internal sealed record ModelStatsBody(
    string Name, string Version, long LastInference, long InferenceCount, long ExecutionCount,
    InferenceStatsBody InferenceStats, IReadOnlyList<BatchStatsBody> BatchStats);
internal sealed record ModelStatsListBody(IReadOnlyList<ModelStatsBody> ModelStats);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(LiveBody))]
[JsonSerializable(typeof(ReadyBody))]
[JsonSerializable(typeof(ModelReadyBody))]
[JsonSerializable(typeof(ServerMetadataBody))]
[JsonSerializable(typeof(ModelMetadataBody))]
[JsonSerializable(typeof(RepositoryIndexRequestBody))]
[JsonSerializable(typeof(List<RepositoryIndexEntryBody>))]
[JsonSerializable(typeof(ModelStatsListBody))]
internal sealed partial class RestJsonContext : JsonSerializerContext;

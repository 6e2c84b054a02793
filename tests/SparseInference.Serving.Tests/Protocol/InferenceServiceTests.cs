using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Tests.TestDoubles;

namespace SparseInference.Serving.Tests.Protocol;

public sealed class InferenceServiceTests : IDisposable
{
    private readonly TempRepository _temp = new();
    private readonly ModelRepository _repository;
    private readonly ServiceProvider _services;
    private readonly InferenceService _service;

    public InferenceServiceTests()
    {
        _temp.AddVersion("m", "1", channels: 2, maxSeqLen: 8, threshold: 0.1)
            .WithServing("m", """{"default_variant":"dense","variants":[{"name":"dense","pattern":"dense"},{"name":"w","pattern":"window","sparsity":0.5}]}""");
        _repository = _temp.Open();
        (_services, _service) = InferenceServiceKit.Build(_repository, new DirectInferenceExecutor(TimeProvider.System));
        _repository.LoadAll();
    }

    public void Dispose()
    {
        _repository.Dispose();
        _services.Dispose();
        _temp.Dispose();
    }

    private static InferenceRequest Request(float[] data, long[] shape, string name = "input", string datatype = "FP32",
        Dictionary<string, InferenceParameter>? parameters = null, RequestedOutput[]? outputs = null) => new()
    {
        ModelName = "m",
        Id = "x",
        Parameters = parameters ?? [],
        Inputs = [new InferenceInput { Name = name, Datatype = datatype, Shape = shape, Data = new JsonTensorData(System.Text.Encoding.UTF8.GetBytes("[" + string.Join(",", data) + "]")) }],
        Outputs = outputs ?? [],
    };

    [Fact]
    public async Task InferAsync_ValidWindow_ReturnsOutputScoreAnomaly()
    {
        // Echo model halves the input, so score = mean over channels of (x/2 − x)² = mean(x²)/4.
        var response = await _service.InferAsync(Request([1, 1, 0, 0, 0.2f, 0.2f], [1, 3, 2]), default);
        Assert.Equal("dense", response.Variant);
        Assert.Equal("x", response.Id);
        Assert.Equal(["output", "score", "anomaly"], response.Outputs.Select(o => o.Name));
        Assert.Equal([0.5f, 0.5f, 0, 0, 0.1f, 0.1f], response.Outputs[0].Float32!);
        Assert.Equal([1, 3, 2], response.Outputs[0].Shape);
        Assert.Equal(new[] { 0.25f, 0f, 0.01f }, response.Outputs[1].Float32!, new ToleranceComparer(1e-6f));
        Assert.Equal([true, false, false], response.Outputs[2].Bool!);
        Assert.Equal([1, 3], response.Outputs[2].Shape);
    }

    [Fact]
    public async Task InferAsync_VariantParameter_PassesItsSpecToTheModel()
    {
        var parameters = new Dictionary<string, InferenceParameter> { ["variant"] = InferenceParameter.Of("w") };
        var response = await _service.InferAsync(Request(new float[4], [1, 2, 2], parameters: parameters), default);
        Assert.Equal("w", response.Variant);
        Assert.Equal("w", response.Parameters["variant"].Value);
        var model = (ScaledEchoModel)_repository.Resolve("m", null).Model;
        Assert.Equal(new Models.AttentionSpec("window", 0.5, 16, 1, 0), model.LastAttention);
    }

    [Fact]
    public async Task InferAsync_VariantNotString_ThrowsNamingKind()
    {
        var parameters = new Dictionary<string, InferenceParameter> { ["variant"] = InferenceParameter.Of(3L) };
        var ex = await Assert.ThrowsAsync<InferenceException>(() => _service.InferAsync(Request(new float[4], [1, 2, 2], parameters: parameters), default).AsTask());
        Assert.Contains("must be a string, got int64 3", ex.Message);
    }

    [Fact]
    public async Task InferAsync_RequestedUnknownOutput_ThrowsListingOutputs()
    {
        var ex = await Assert.ThrowsAsync<InferenceException>(() =>
            _service.InferAsync(Request(new float[4], [1, 2, 2], outputs: [new RequestedOutput("logits")]), default).AsTask());
        Assert.Contains("unknown output 'logits'", ex.Message);
        Assert.Contains("[output, score, anomaly]", ex.Message);
    }

    [Theory]
    [InlineData(new long[] { 1, 2 }, "3 dimensions")]
    [InlineData(new long[] { 1, 2, 3 }, "shape[2] must be 2")]
    [InlineData(new long[] { 0, 2, 2 }, "shape[0] must be at least 1, got 0")]
    [InlineData(new long[] { 1, 9, 2 }, "max_seq_len 8, got 9")]
    [InlineData(new long[] { 1, -1, 2 }, "shape[1] must be at least 1")]
    public async Task InferAsync_BadShape_ThrowsInvalidNamingShape(long[] shape, string fragment)
    {
        var ex = await Assert.ThrowsAsync<InferenceException>(() => _service.InferAsync(Request(new float[4], shape), default).AsTask());
        Assert.Equal(InferenceErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains("input 'input'", ex.Message);
        Assert.Contains(fragment, ex.Message);
    }

    [Fact]
    public async Task InferAsync_NaNInRawData_ThrowsNamingIndex()
    {
        var bytes = new byte[16];
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, 8);
        var request = new InferenceRequest
        {
            ModelName = "m",
            Inputs = [new InferenceInput { Name = "input", Datatype = "FP32", Shape = [1, 2, 2], Data = new RawTensorData(bytes) }],
        };
        var ex = await Assert.ThrowsAsync<InferenceException>(() => _service.InferAsync(request, default).AsTask());
        Assert.Contains("data[2] must be a finite number, got NaN", ex.Message);
    }

    [Fact]
    public async Task InferAsync_MissingInput_ThrowsNamingExpectedTensor()
    {
        var request = new InferenceRequest { ModelName = "m", Inputs = [] };
        var ex = await Assert.ThrowsAsync<InferenceException>(() => _service.InferAsync(request, default).AsTask());
        Assert.Contains("missing input 'input'", ex.Message);
        Assert.Contains("[-1, -1, 2]", ex.Message);
    }

    [Fact]
    public async Task InferAsync_Success_UpdatesStatistics()
    {
        await _service.InferAsync(Request(new float[8], [2, 2, 2]), default);
        var stats = _repository.Resolve("m", null).Statistics;
        Assert.Equal(1, stats.Success.Count);
        Assert.Equal(2, stats.InferenceCount);
        Assert.Equal(1, stats.ExecutionCount);
        Assert.Equal(2, Assert.Single(stats.Batches).BatchSize);
        await Assert.ThrowsAsync<InferenceException>(() => _service.InferAsync(Request(new float[3], [2, 2, 2]), default).AsTask());
        Assert.Equal(1, stats.Fail.Count);
    }

    [Fact]
    public void ReconstructionScore_TwoChannels_IsMeanSquaredError()
    {
        var score = InferenceService.ReconstructionScore([1, 2, 3, 4], [0, 0, 3, 6], 2);
        Assert.Equal([2.5f, 2f], score);
    }

    private sealed class ToleranceComparer(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(float obj) => 0;
    }
}

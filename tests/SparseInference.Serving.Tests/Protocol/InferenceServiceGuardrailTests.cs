using System.Collections.Immutable;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Models;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Tests.Infrastructure;
using SparseInference.Serving.Tests.TestDoubles;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Guardrails;

namespace SparseInference.Serving.Tests.Protocol;

/// <summary>Guardrails count only the failures the server caused; what a client asked for or caused does not count.</summary>
public sealed class InferenceServiceGuardrailTests : IDisposable
{
    private const int Samples = 10;
    private readonly TempRepository _temp = new();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string> ClientCaused() =>
    [
        "deadline",
        "cancelled",
        "invalid",
        "overloaded",
        "memory",
    ];

    [Theory]
    [MemberData(nameof(ClientCaused))]
    public async Task InferAsync_CandidateFailingForClientReasons_NoRollback(string failure)
    {
        var (trips, table) = await RunCandidateAsync(failure);
        Assert.Empty(trips);
        Assert.Equal(0.5, table.Split.WeightOf("w"));
    }

    [Fact]
    public async Task InferAsync_CandidateFailingInsideTheServer_RolledBack()
    {
        var (trips, table) = await RunCandidateAsync("engine");
        var trip = Assert.Single(trips);
        Assert.Equal("error_rate", trip.Bound);
        Assert.Equal(0, table.Split.WeightOf("w"));
    }

    /// <summary>Splits traffic 50/50 onto a candidate, sends it requests that fail as named, and lets the guardrails judge.</summary>
    private async Task<(IReadOnlyList<GuardrailTrip> Trips, RoutingTable Table)> RunCandidateAsync(string failure)
    {
        _temp.AddVersion("m", "1", channels: 2, maxSeqLen: 8)
            .WithServing("m", """{"default_variant":"dense","variants":[{"name":"dense","pattern":"dense"},{"name":"w","pattern":"window","sparsity":0.5}]}""");
        using var repository = _temp.Open();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["SparseInference:Variants:Guardrails:Enabled"] = "true",
            ["SparseInference:Variants:Guardrails:MinSamples"] = Samples.ToString(),
            ["SparseInference:Variants:Guardrails:MaxErrorRate"] = "0.2",
            [TestStateDirectory.Key] = TestStateDirectory.Create(),
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddSingleton(repository);
        services.AddSingleton<IInferenceExecutor>(new FailingExecutor(failure));
        services.AddSingleton<IVariantModelSource>(sp => new RepositoryVariantModelSource(sp, new ScaledEchoLoader()));
        services.AddSingleton<RepositoryVariantBinding>();
        services.AddSparseInferenceVariants();
        await using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<RepositoryVariantBinding>().Attach(repository);
        repository.LoadAll();
        var service = new InferenceService(repository, provider.GetRequiredService<IInferenceExecutor>(), provider.GetRequiredService<VariantRouter>(), TimeProvider.System);
        Assert.True(provider.GetRequiredService<VariantCatalog>().TryGet("m", out var registry));
        Assert.True((await registry.SetSplitAsync(new SplitConfig([new SplitWeight("dense", 1), new SplitWeight("w", 1)]))).Succeeded);

        using var cancelled = new CancellationTokenSource();
        if (failure == "cancelled")
        {
            await cancelled.CancelAsync();
        }

        for (var i = 0; i < 3 * Samples; i++)
        {
            var request = new InferenceRequest
            {
                ModelName = "m",
                Parameters = new Dictionary<string, InferenceParameter> { ["variant"] = InferenceParameter.Of("w") },
                Inputs = [new InferenceInput { Name = "input", Datatype = "FP32", Shape = [1, 2, 2], Data = new JsonTensorData("[0,0,0,0]"u8.ToArray()) }],
            };
            await Assert.ThrowsAnyAsync<Exception>(async () => await service.InferAsync(request, cancelled.Token));
        }

        var trips = await provider.GetRequiredService<GuardrailMonitor>().EvaluateAsync();
        return (trips, registry.Current);
    }

    /// <summary>An executor whose every call fails as a client (deadline, cancel, bad input, load shedding) or the engine would make it fail.</summary>
    private sealed class FailingExecutor(string failure) : IInferenceExecutor
    {
        public ValueTask<InferenceExecution> ExecuteAsync(
            ModelVersion model, ExecutionVariant variant, ForwardInput input, BatchRequestOptions scheduling, CancellationToken cancellationToken) =>
            failure switch
            {
                "deadline" => throw new InferenceException(InferenceErrorKind.DeadlineExceeded, "the request waited longer than its queue timeout of 0.001 ms"),
                "cancelled" => throw new OperationCanceledException(cancellationToken),
                "invalid" => throw InferenceException.Invalid("parameter 'priority' or 'timeout': out of range"),
                "overloaded" => throw new InferenceException(InferenceErrorKind.Overloaded, "the request queue is full") { RetryAfterSeconds = 1 },
                "memory" => throw new InferenceException(InferenceErrorKind.ResourceExhausted, "more than the whole in-flight budget"),
                _ => throw new InvalidOperationException("the engine failed"),
            };
    }
}

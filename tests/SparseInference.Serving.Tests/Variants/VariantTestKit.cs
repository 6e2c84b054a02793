using System.Collections.Concurrent;
using System.Collections.Immutable;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using SparseInference.Models;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Tests.Variants;

/// <summary>
/// A deterministic stand-in for a loaded encoder (the engine is built elsewhere): each output element is
/// input + sparsity + 10 × pattern index + the instance's weights offset, so every result says which
/// spec and which weights produced it.
/// </summary>
internal sealed class SpecEchoModel(float weightsOffset = 0f) : IVariantModel
{
    private int _forwards;

    public float WeightsOffset { get; } = weightsOffset;

    public int Forwards => Volatile.Read(ref _forwards);

    /// <summary>When set, forwards wait on it (to hold work in flight).</summary>
    public ManualResetEventSlim? Gate { get; set; }

    /// <summary>When set, forwards with a matching spec produce NaN (a broken build).</summary>
    public Func<AttentionSpec, bool>? ProducesNaN { get; set; }

    public static float Expected(float input, AttentionSpec spec, float weightsOffset) =>
        input + (float)spec.Sparsity + 10f * PatternIndex(spec.Pattern) + weightsOffset;

    public static int PatternIndex(string pattern) => AttentionSpec.KnownPatterns.ToList().IndexOf(pattern);

    public ForwardResult Forward(ForwardInput input, AttentionSpec spec)
    {
        Interlocked.Increment(ref _forwards);
        Gate?.Wait(TimeSpan.FromSeconds(10));
        var values = input.Values ?? throw new ArgumentException("values required");
        var output = new float[values.Length];
        var nan = ProducesNaN?.Invoke(spec) == true;
        for (var i = 0; i < values.Length; i++)
        {
            output[i] = nan ? float.NaN : Expected(values[i], spec, WeightsOffset);
        }

        var dense = (long)input.Batch * input.Time * input.Time;
        return new ForwardResult
        {
            Output = output,
            Shape = [input.Batch, input.Time, values.Length / (input.Batch * input.Time)],
            ComputedPairs = (long)(dense * (1 - spec.Sparsity)),
            DensePairs = dense,
        };
    }
}

/// <summary>Loads <see cref="SpecEchoModel"/>s by directory; counts loads; can fail or hold a load.</summary>
internal sealed class TestModelSource : IVariantModelSource
{
    private int _loads;

    public ConcurrentDictionary<string, SpecEchoModel> Loaded { get; } = new();

    public int Loads => Volatile.Read(ref _loads);

    /// <summary>When set, loads wait for it to complete.</summary>
    public TaskCompletionSource? HoldLoads { get; set; }

    /// <summary>Directories this source cannot load (present on one replica, absent on another).</summary>
    public HashSet<string> MissingHere { get; } = [];

    /// <summary>Signalled when a load has started.</summary>
    public TaskCompletionSource LoadStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task<IVariantModel> LoadAsync(string model, string weightsDirectory, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _loads);
        LoadStarted.TrySetResult();
        if (HoldLoads is { } hold)
        {
            await hold.Task.WaitAsync(cancellationToken);
        }

        if (weightsDirectory.Contains("missing", StringComparison.Ordinal) || MissingHere.Contains(weightsDirectory))
        {
            throw new DirectoryNotFoundException($"weights directory '{weightsDirectory}' does not exist");
        }

        // Offset from the directory name so different weights give different outputs.
        var loaded = new SpecEchoModel(weightsOffset: 100f * (Loaded.Count + 1));
        Loaded[weightsDirectory] = loaded;
        return loaded;
    }

    public ForwardInput CreateWarmupInput(string model) => VariantTestKit.Input(1f);
}

internal sealed class SeededRandom(int seed) : IRoutingRandom
{
    private readonly Random _random = new(seed);

    public double NextDouble()
    {
        lock (_random)
        {
            return _random.NextDouble();
        }
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private long _ticks = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}

internal static class VariantTestKit
{
    public const string Model = "pump-anomaly";

    public static ForwardInput Input(params float[] values) => new() { Batch = 1, Time = values.Length, Values = values };

    /// <summary>The real service registrations, with the model source, random and clock a test controls.</summary>
    public static ServiceProvider Services(
        TestModelSource source,
        IRoutingRandom? random = null,
        TimeProvider? time = null,
        IDictionary<string, string?>? settings = null,
        Action<IServiceCollection>? configure = null)
    {
        // Every provider gets a store of its own: rollout state written by one test never reaches another.
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["SparseInference:State:Directory"] = TempStateDirectory() })
            .AddInMemoryCollection(settings ?? new Dictionary<string, string?>())
            .Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton<IVariantModelSource>(source);
        if (random is not null)
        {
            services.AddSingleton(random);
        }

        if (time is not null)
        {
            services.AddSingleton(time);
        }

        configure?.Invoke(services);
        services.AddSparseInferenceVariants();
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
    }

    /// <summary>A new empty state directory; all of them go when the test process exits.</summary>
    public static string TempStateDirectory() => Infrastructure.TestStateDirectory.Create();

    public static (VariantCatalog Catalog, VariantRegistry Registry, SpecEchoModel DefaultModel) Catalog(ServiceProvider provider)
    {
        var catalog = provider.GetRequiredService<VariantCatalog>();
        var model = new SpecEchoModel();
        var registry = catalog.AddModel(Model, model, new VariantDefinition("dense", "dense"));
        return (catalog, registry, model);
    }

    public static SplitConfig Split(params (string Variant, double Weight)[] weights) =>
        new(weights.Select(w => new SplitWeight(w.Variant, w.Weight)).ToImmutableArray());

    public static async Task<VariantRegistry> WithVariants(VariantRegistry registry, params VariantDefinition[] definitions)
    {
        foreach (var d in definitions)
        {
            var result = await registry.UpsertVariantAsync(d);
            Assert.True(result.Succeeded, result.Error);
        }

        return registry;
    }
}

using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Tests.Infrastructure;

/// <summary>The engine's model loader (and a repository on it) as a host configured with <c>Device = cpu</c> builds it. Also compiled into the functional tests.</summary>
internal static class CpuModelLoader
{
    public static EngineModelLoader Create() =>
        new(new ConfiguredBackend(Options.Create(new SparseInferenceOptions { Device = "cpu" }), [], NullLogger<ConfiguredBackend>.Instance),
            NullLogger<EngineModelLoader>.Instance);

    /// <summary>A model repository at <paramref name="root"/> whose models load on the CPU; nothing is loaded yet.</summary>
    public static ModelRepository Repository(string root) => new(root, Create(), NullLogger<ModelRepository>.Instance);
}

using Microsoft.Extensions.Logging;
using SparseInference.Models;
using SparseInference.Models.Configuration;
using SparseInference.Serving.Hosting;
using SparseInference.Tensors;

namespace SparseInference.Serving.Repository;

/// <summary>
/// Loads version directories with the SparseInference.Models engine, onto the configured compute device
/// (<see cref="ConfiguredBackend"/>: opened once, on the first load; the CPU when the device is unavailable).
/// </summary>
public sealed partial class EngineModelLoader(ConfiguredBackend device, ILogger<EngineModelLoader> logger) : IInferenceModelLoader
{
    private readonly ILogger _logger = logger ?? throw new ArgumentNullException(nameof(logger));

    // One device stream and BLAS handle serve every model: forwards on an accelerator run one at a time.
    private readonly Lock _gpu = new();

    public IInferenceModel Load(string versionDirectory)
    {
        var backend = device.Backend;
        if (backend is null)
        {
            return new EngineModel(EncoderModel.Load(versionDirectory), null, null, _logger, null);
        }

        var model = EncoderModel.Load(versionDirectory, backend);
        Log.LoadedOnDevice(_logger, versionDirectory, backend.Name);
        return new EngineModel(model, _gpu, versionDirectory, _logger, backend as IDeviceMemory);
    }

    /// <param name="gpu">The lock serialising accelerator forwards, or null on the CPU.</param>
    /// <param name="directory">For an accelerator model, where to load the CPU twin for calls its backend does not support.</param>
    /// <param name="memory">The backend whose pooled blocks go back to the driver once this model is released.</param>
    private sealed class EngineModel(EncoderModel model, Lock? gpu, string? directory, ILogger logger, IDeviceMemory? memory)
        : IInferenceModel, IDisposable
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _cpuPatterns = new(StringComparer.Ordinal);
        private EncoderModel? _cpuTwin;

        // Unloading disposes a version while forwards already handed to it may still run (a request resolved just
        // before the swap runs on the retired version): one reference for the repository plus one per forward in
        // flight, and the weights are released when the last one goes. Zero means released.
        private int _references = 1;
        private int _disposed;

        public ModelConfiguration Configuration { get; } = FromEngine(model.Config);

        public ForwardResult Forward(ForwardInput input, AttentionSpec attention)
        {
            AddReference();
            try
            {
                return ForwardCore(input, attention);
            }
            finally
            {
                ReleaseReference();
            }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                ReleaseReference();
            }
        }

        private void AddReference()
        {
            var current = Volatile.Read(ref _references);
            while (true)
            {
                if (current == 0)
                {
                    throw new InferenceException(
                        InferenceErrorKind.Unavailable, $"model version at '{model.Directory}' was unloaded before this request reached it; retry");
                }

                var seen = Interlocked.CompareExchange(ref _references, current + 1, current);
                if (seen == current)
                {
                    return;
                }

                current = seen;
            }
        }

        private void ReleaseReference()
        {
            if (Interlocked.Decrement(ref _references) != 0)
            {
                return;
            }

            model.Dispose();
            _cpuTwin?.Dispose();
            if (memory is not null && gpu is not null)
            {
                lock (gpu)
                {
                    memory.ReleaseCachedMemory();
                }
            }
        }

        private ForwardResult ForwardCore(ForwardInput input, AttentionSpec attention)
        {
            if (gpu is null)
            {
                return model.Forward(input, attention);
            }

            if (_cpuPatterns.ContainsKey(attention.Pattern))
            {
                return _cpuTwin!.Forward(input, attention);
            }

            try
            {
                lock (gpu)
                {
                    return model.Forward(input, attention);
                }
            }
            catch (NotSupportedException ex)
            {
                // An op or shape the GPU kernels lack (e.g. token top-k attention): same weights, CPU engine.
                // Decided once per pattern: the GPU model's head dim or op set does not change between calls.
                var twin = LazyInitializer.EnsureInitialized(ref _cpuTwin, () => EncoderModel.Load(directory!));
                if (_cpuPatterns.TryAdd(attention.Pattern, true))
                {
                    Log.CpuFallback(logger, directory!, attention.Pattern, ex.Message);
                }

                return twin.Forward(input, attention);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.LoadedOnDevice, Level = LogLevel.Information, Message = "Loaded {Directory} onto {Backend}")]
        public static partial void LoadedOnDevice(ILogger logger, string directory, string backend);

        [LoggerMessage(EventId = EventIds.PatternOnCpu, Level = LogLevel.Warning, Message = "{Directory}: pattern '{Pattern}' runs on the CPU: {Reason}")]
        public static partial void CpuFallback(ILogger logger, string directory, string pattern, string reason);
    }

    internal static ModelConfiguration FromEngine(ModelConfig config) => new()
    {
        Format = ModelConfig.FormatName,
        FormatVersion = ModelConfig.FormatVersion,
        InputKind = config.InputKind == InputKind.Tokens ? ModelConfiguration.TokenInput : ModelConfiguration.ContinuousInput,
        InputChannels = config.InputChannels,
        VocabSize = config.VocabSize,
        DModel = config.DModel,
        NHeads = config.NHeads,
        NLayers = config.NLayers,
        DFf = config.DFf,
        MaxSeqLen = config.MaxSeqLen,
        Head = config.Head switch
        {
            HeadKind.Classification => ModelConfiguration.ClassificationHead,
            HeadKind.Regression => ModelConfiguration.RegressionHead,
            _ => ModelConfiguration.ReconstructionHead,
        },
        OutputDim = config.OutputDim,
        Gated = config.Gated,
        Attention = new AttentionConfiguration
        {
            Pattern = config.Attention.Pattern,
            Sparsity = config.Attention.Sparsity,
            BlockSize = config.Attention.BlockSize,
            GlobalBlocks = config.Attention.GlobalBlocks,
            Seed = config.Attention.Seed,
        },
        AnomalyThreshold = config.AnomalyThreshold,
        Metadata = config.Metadata,
    };
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Models;
using SparseInference.Models.Configuration;
using SparseInference.Serving.Hosting;
using SparseInference.Tensors;
using SparseInference.Tensors.Cuda;

namespace SparseInference.Serving.Repository;

/// <summary>
/// Loads version directories with the SparseInference.Models engine, onto the compute device that
/// <c>SparseInference:Device</c> names (the backend is created once, on the first load; CPU when CUDA is unavailable).
/// </summary>
public sealed partial class EngineModelLoader : IInferenceModelLoader, IDisposable
{
    private readonly Lazy<IComputeBackend?> _backend;
    private readonly ILogger _logger;

    // One GPU stream and cuBLAS handle serve every model: forwards on the GPU run one at a time.
    private readonly Lock _gpu = new();

    public EngineModelLoader(IOptions<SparseInferenceOptions> options, ILogger<EngineModelLoader> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        var device = options.Value.Device;
        _backend = new Lazy<IComputeBackend?>(() => ComputeDeviceSelector.Create(device, _logger), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The backend models load onto; null for the engine's shared CPU backend.</summary>
    public IComputeBackend? Backend => _backend.Value;

    /// <summary>The backend if the first load has opened it already (never opens it): what metrics read.</summary>
    public IComputeBackend? OpenedBackend => _backend.IsValueCreated ? _backend.Value : null;

    public IInferenceModel Load(string versionDirectory)
    {
        var backend = _backend.Value;
        if (backend is null)
        {
            return new EngineModel(EncoderModel.Load(versionDirectory), null, null, _logger, null);
        }

        var model = EncoderModel.Load(versionDirectory, backend);
        Log.LoadedOnDevice(_logger, versionDirectory, backend.Name);
        return new EngineModel(model, _gpu, versionDirectory, _logger, backend as CudaComputeBackend);
    }

    public void Dispose()
    {
        if (_backend.IsValueCreated)
        {
            _backend.Value?.Dispose();
        }
    }

    /// <param name="gpu">The lock serialising GPU forwards, or null on the CPU.</param>
    /// <param name="directory">For a GPU model, where to load the CPU twin for calls the GPU backend does not support.</param>
    /// <param name="cuda">The CUDA backend whose pooled blocks go back to the driver once this model is released.</param>
    private sealed class EngineModel(EncoderModel model, Lock? gpu, string? directory, ILogger logger, CudaComputeBackend? cuda)
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
            if (cuda is not null && gpu is not null)
            {
                lock (gpu)
                {
                    cuda.ReleaseCachedMemory();
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
        [LoggerMessage(EventId = 43, Level = LogLevel.Information, Message = "Loaded {Directory} onto {Backend}")]
        public static partial void LoadedOnDevice(ILogger logger, string directory, string backend);

        [LoggerMessage(EventId = 44, Level = LogLevel.Warning, Message = "{Directory}: pattern '{Pattern}' runs on the CPU: {Reason}")]
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

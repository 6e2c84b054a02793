using SparseInference.Models;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Tests.TestDoubles;

namespace SparseInference.Serving.Tests.Reliability;

public sealed class ModelReloadFaultTests : IDisposable
{
    private readonly TempRepository _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Load_NewVersionFailsAfterOthersLoaded_KeepsServingVersionAndDisposesThePartialLoad()
    {
        _temp.AddVersion("m", "1");
        var loader = new TrackingLoader();
        using var repository = _temp.Open(loader);
        repository.Load("m");
        var serving = repository.Resolve("m", null).Model;

        _temp.AddVersion("m", "2");
        loader.FailingVersion = "2";
        var ex = Assert.Throws<InferenceException>(() => repository.Load("m"));
        Assert.Contains("failed to load model 'm'", ex.Message);

        Assert.Same(serving, repository.Resolve("m", null).Model);
        Assert.Equal(ModelRepository.ReadyState, Assert.Single(repository.Index(readyOnly: false)).State);
        Assert.False(((TrackedModel)serving).Disposed);
        // The second instance of version 1, built during the failed reload, is released; nothing else is left over.
        Assert.Equal(2, loader.Built.Count);
        Assert.True(loader.Built[1].Disposed);
    }

    [Fact]
    public void Load_FirstLoadFails_RecordsUnavailableWithReason()
    {
        _temp.AddVersion("m", "1");
        var loader = new TrackingLoader { FailingVersion = "1" };
        using var repository = _temp.Open(loader);
        Assert.Throws<InferenceException>(() => repository.Load("m"));
        var entry = Assert.Single(repository.Index(readyOnly: false));
        Assert.Equal(ModelRepository.UnavailableState, entry.State);
        Assert.Contains("corrupt weights", entry.Reason);
    }

    private sealed class TrackedModel(IInferenceModel inner) : IInferenceModel, IDisposable
    {
        public bool Disposed { get; private set; }

        public ModelConfiguration Configuration => inner.Configuration;

        public ForwardResult Forward(ForwardInput input, AttentionSpec attention) => inner.Forward(input, attention);

        public void Dispose() => Disposed = true;
    }

    private sealed class TrackingLoader : IInferenceModelLoader
    {
        private readonly ScaledEchoLoader _inner = new();

        public string? FailingVersion { get; set; }

        public List<TrackedModel> Built { get; } = [];

        public IInferenceModel Load(string versionDirectory)
        {
            if (Path.GetFileName(versionDirectory) == FailingVersion)
            {
                throw new InvalidDataException($"corrupt weights in '{versionDirectory}'.");
            }

            var model = new TrackedModel(_inner.Load(versionDirectory));
            Built.Add(model);
            return model;
        }
    }
}

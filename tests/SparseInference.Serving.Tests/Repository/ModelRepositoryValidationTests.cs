using SparseInference.Serving.Repository;
using SparseInference.Serving.Tests.TestDoubles;

namespace SparseInference.Serving.Tests.Repository;

/// <summary>A load is checked whole before it is published, and no one model's failure, of any kind, stops the others.</summary>
public sealed class ModelRepositoryValidationTests : IDisposable
{
    private readonly TempRepository _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Load_ValidatingRefuses_NothingPublishedAndTheServingVersionStays()
    {
        _temp.AddVersion("m", "1");
        using var repository = _temp.Open();
        repository.LoadAll();
        var serving = repository.Resolve("m", null);
        var changes = 0;
        repository.Changed += _ => changes++;
        repository.Validating += _ => throw new InvalidDataException("variant 'Dense': name: expected [a-z0-9._-]");

        var ex = Assert.Throws<InferenceException>(() => repository.Load("m"));
        Assert.Equal(InferenceErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains("variant 'Dense'", ex.Message);
        Assert.Equal(0, changes);
        Assert.Same(serving, repository.Resolve("m", null));
        Assert.False(serving.IsRetired);
    }

    [Fact]
    public void LoadAll_OneModelThrowingAnyException_ThatModelUnavailableWithItsReasonOthersServe()
    {
        _temp.AddVersion("bad", "1").AddVersion("good", "1");
        using var repository = _temp.Open(new ThrowingLoader("bad", new OverflowException("Arithmetic operation resulted in an overflow.")));
        repository.LoadAll();

        Assert.Equal("good", repository.Resolve("good", null).ModelName);
        var entry = repository.Index(readyOnly: false).Single(e => e.Name == "bad");
        Assert.Equal(ModelRepository.UnavailableState, entry.State);
        Assert.Equal("OverflowException: Arithmetic operation resulted in an overflow.", entry.Reason);
        var ex = Assert.Throws<InferenceException>(() => repository.Resolve("bad", null));
        Assert.Equal(InferenceErrorKind.Unavailable, ex.Kind);
        Assert.Contains("OverflowException", ex.Message);
    }

    [Fact]
    public void Load_FollowerOfChangedFailsAfterPublishing_ModelUnavailableSayingWhyNotHalfReady()
    {
        _temp.AddVersion("m", "1");
        using var repository = _temp.Open();
        repository.Changed += change =>
        {
            if (change.DefaultVersion is not null)
            {
                throw new InvalidOperationException("the variant catalog refused the version");
            }
        };

        var ex = Assert.Throws<InferenceException>(() => repository.Load("m"));
        Assert.Equal(InferenceErrorKind.Internal, ex.Kind);
        var entry = Assert.Single(repository.Index(readyOnly: false));
        Assert.Equal(ModelRepository.UnavailableState, entry.State);
        Assert.Contains("the variant catalog refused the version", entry.Reason);
    }

    private sealed class ThrowingLoader(string model, Exception exception) : IInferenceModelLoader
    {
        private readonly ScaledEchoLoader _inner = new();

        public IInferenceModel Load(string versionDirectory) =>
            Path.GetFileName(Path.GetDirectoryName(versionDirectory)) == model ? throw exception : _inner.Load(versionDirectory);
    }
}

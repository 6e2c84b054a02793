using SparseInference.Serving.Repository;
using SparseInference.Serving.Tests.TestDoubles;

namespace SparseInference.Serving.Tests.Repository;

public sealed class ModelRepositoryTests : IDisposable
{
    private const string Variants = """
        {"default_version":"1","default_variant":"dense","variants":[
          {"name":"dense","pattern":"dense","sparsity":0.0},
          {"name":"window-0.75","pattern":"window","sparsity":0.75,"block_size":4}]}
        """;

    private readonly TempRepository _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void LoadAll_TwoVersionsNoManifest_DefaultIsHighestNumericVersion()
    {
        _temp.AddVersion("m", "2").AddVersion("m", "10");
        using var repository = _temp.Open();
        repository.LoadAll();
        Assert.Equal("10", repository.Resolve("m", null).Version);
        Assert.Equal(["10", "2"], repository.Versions("m"));
        Assert.Equal(ModelVersion.ConfigVariantName, repository.Resolve("m", "2").DefaultVariant);
    }

    [Fact]
    public void LoadAll_Manifest_AppliesDefaultVersionAndVariants()
    {
        _temp.AddVersion("m", "1").AddVersion("m", "2").WithServing("m", Variants);
        using var repository = _temp.Open();
        repository.LoadAll();
        var version = repository.Resolve("m", null);
        Assert.Equal("1", version.Version);
        Assert.Equal("dense", version.DefaultVariant);
        Assert.Equal(new Models.AttentionSpec("window", 0.75, 4, 1, 0), version.Variants["window-0.75"]);
    }

    [Fact]
    public void Resolve_UnknownModel_ThrowsNotFound()
    {
        using var repository = _temp.Open();
        var ex = Assert.Throws<InferenceException>(() => repository.Resolve("nosuch", null));
        Assert.Equal(InferenceErrorKind.NotFound, ex.Kind);
        Assert.Contains("'nosuch'", ex.Message);
    }

    [Fact]
    public void Resolve_UnknownVersion_ThrowsNotFoundListingVersions()
    {
        _temp.AddVersion("m", "1");
        using var repository = _temp.Open();
        repository.LoadAll();
        var ex = Assert.Throws<InferenceException>(() => repository.Resolve("m", "3"));
        Assert.Equal(InferenceErrorKind.NotFound, ex.Kind);
        Assert.Contains("'3'", ex.Message);
        Assert.Contains("available versions: 1", ex.Message);
    }

    [Fact]
    public void Unload_LoadedModel_ResolveSaysUnavailableAndIndexKeepsIt()
    {
        _temp.AddVersion("m", "1");
        using var repository = _temp.Open();
        repository.LoadAll();
        repository.Unload("m");
        var ex = Assert.Throws<InferenceException>(() => repository.Resolve("m", null));
        Assert.Equal(InferenceErrorKind.Unavailable, ex.Kind);
        var entry = Assert.Single(repository.Index(readyOnly: false));
        Assert.Equal(("m", ModelRepository.UnavailableState, "unloaded"), (entry.Name, entry.State, entry.Reason));
        Assert.Empty(repository.Index(readyOnly: true));

        repository.Load("m");
        Assert.Equal("1", repository.Resolve("m", null).Version);
    }

    [Fact]
    public void Index_ModelDirectoryNeverLoaded_ListedUnavailable()
    {
        _temp.AddVersion("later", "1");
        using var repository = _temp.Open();
        var entry = Assert.Single(repository.Index(readyOnly: false));
        Assert.Equal("later", entry.Name);
        Assert.Equal(ModelRepository.UnavailableState, entry.State);
    }

    [Fact]
    public void Load_ServingOverride_ReplacesManifest()
    {
        _temp.AddVersion("m", "1").WithServing("m", Variants);
        using var repository = _temp.Open();
        repository.Load("m", """{"variants":[{"name":"bb","pattern":"bigbird","sparsity":0.5}]}""");
        var version = repository.Resolve("m", null);
        Assert.Equal("bb", version.DefaultVariant);
        Assert.Equal(["bb"], version.Variants.Keys);
    }

    [Theory]
    [InlineData("""{"variants":[{"name":"x","pattern":"diagonal"}]}""", "'diagonal'")]
    [InlineData("""{"variants":[{"name":"x","pattern":"window","sparsity":1.0}]}""", "sparsity 1")]
    [InlineData("""{"variants":[{"name":"x","pattern":"dense"},{"name":"x","pattern":"dense"}]}""", "unique")]
    [InlineData("""{"default_variant":"y","variants":[{"name":"x","pattern":"dense"}]}""", "default_variant 'y'")]
    [InlineData("""{"default_version":"9"}""", "default_version '9'")]
    [InlineData("""{"variants":[{"name":"g","pattern":"gated"}]}""", "gated: true")]
    [InlineData("""{"variants": [""", "not valid JSON")]
    public void Load_BadManifest_ThrowsInvalidAndRecordsReason(string manifest, string fragment)
    {
        _temp.AddVersion("m", "1").WithServing("m", manifest);
        using var repository = _temp.Open();
        var ex = Assert.Throws<InferenceException>(() => repository.Load("m"));
        Assert.Equal(InferenceErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains(fragment, ex.Message);
        Assert.Contains(fragment, Assert.Single(repository.Index(false)).Reason);
    }

    [Fact]
    public void Load_VersionWithoutWeights_ReasonNamesFile()
    {
        _temp.AddVersion("m", "1");
        File.Delete(Path.Combine(_temp.Root, "m", "1", ModelRepository.WeightsFileName));
        using var repository = _temp.Open();
        repository.LoadAll();
        Assert.Contains(ModelRepository.WeightsFileName, Assert.Single(repository.Index(false)).Reason);
    }

    [Theory]
    [InlineData("..")]
    [InlineData("../m")]
    [InlineData("/tmp")]
    [InlineData("m/1")]
    public void Load_NameOutsideRoot_ThrowsInvalidArgument(string name)
    {
        using var repository = _temp.Open();
        var ex = Assert.Throws<InferenceException>(() => repository.Load(name));
        Assert.Equal(InferenceErrorKind.InvalidArgument, ex.Kind);
    }

    [Fact]
    public void Load_MissingDirectory_ThrowsNotFound()
    {
        using var repository = _temp.Open();
        Assert.Equal(InferenceErrorKind.NotFound, Assert.Throws<InferenceException>(() => repository.Load("ghost")).Kind);
    }
}

using SparseInference.Serving.Hosting;

namespace SparseInference.Serving.Tests.Hosting;

/// <summary>Variant weights resolve inside the model repository, whoever names them (a manifest, an override, an admin).</summary>
public sealed class RepositoryVariantModelSourceTests
{
    private static readonly string Root = Path.Combine(Path.GetTempPath(), "si-weights-root");

    [Theory]
    [InlineData("finetuned/1")]
    [InlineData("../other-model/1")]
    public void ResolveWeightsDirectory_RelativeInsideTheRepository_ResolvedFromTheModelDirectory(string weights)
    {
        var resolved = RepositoryVariantModelSource.ResolveWeightsDirectory(Root, "pump", weights);
        Assert.Equal(Path.GetFullPath(Path.Combine(Root, "pump", weights)), resolved);
    }

    [Fact]
    public void ResolveWeightsDirectory_AbsoluteInsideTheRepository_Accepted()
    {
        var inside = Path.Combine(Root, "pump", "v2");
        Assert.Equal(inside, RepositoryVariantModelSource.ResolveWeightsDirectory(Root, "pump", inside));
    }

    [Theory]
    [InlineData("/etc")]
    [InlineData("../../etc")]
    [InlineData("..")]
    [InlineData("../../si-weights-root-sibling/1")]
    public void ResolveWeightsDirectory_OutsideTheRepository_RefusedNamingThePath(string weights)
    {
        var ex = Assert.Throws<ArgumentException>(() => RepositoryVariantModelSource.ResolveWeightsDirectory(Root, "pump", weights));
        Assert.Equal($"weights: expected a directory inside the model repository (relative to the model's directory), actual '{weights}'", ex.Message);
    }
}

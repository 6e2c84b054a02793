using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Tests.Repository;

public sealed class ModelNamesTests
{
    [Theory]
    [InlineData("sensor")]
    [InlineData("pump-7_v2.1")]
    [InlineData("1")]
    public void TryValidate_SafeName_Accepts(string name)
    {
        Assert.True(ModelNames.TryValidate(name, "model name", out var error), error);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("..", "'.'")]
    [InlineData(".hidden", "'.'")]
    [InlineData("a/b", "'a/b'")]
    [InlineData("a\\b", "'a\\b'")]
    [InlineData("/etc", "'/etc'")]
    [InlineData("x y", "'x y'")]
    public void TryValidate_UnsafeName_RejectsNamingIt(string name, string fragment)
    {
        Assert.False(ModelNames.TryValidate(name, "model name", out var error));
        Assert.Contains("model name", error);
        Assert.Contains(fragment, error);
    }

    [Fact]
    public void TryValidate_TooLong_Rejects()
    {
        Assert.False(ModelNames.TryValidate(new string('a', 129), "model name", out var error));
        Assert.Contains("129", error);
    }

    [Fact]
    public void CombineConfined_Child_StaysUnderRoot()
    {
        var root = Path.GetTempPath();
        Assert.Equal(Path.Combine(Path.GetFullPath(root), "m"), ModelNames.CombineConfined(root, "m"));
    }

    [Theory]
    [InlineData("..")]
    [InlineData("../x")]
    [InlineData("/etc")]
    public void CombineConfined_Escape_Throws(string segment)
    {
        Assert.Throws<ArgumentException>(() => ModelNames.CombineConfined(Path.Combine(Path.GetTempPath(), "root"), segment));
    }
}

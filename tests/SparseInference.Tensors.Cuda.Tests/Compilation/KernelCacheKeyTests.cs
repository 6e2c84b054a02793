using SparseInference.Tensors.Cuda.Compilation;

namespace SparseInference.Tensors.Cuda.Tests.Compilation;

public class KernelCacheKeyTests
{
    private static readonly string[] Options = ["--gpu-architecture=sm_90", "-DHEAD_DIM=64"];

    private static string Key(string source = "kernel source", string[]? options = null, int major = 9, int minor = 0, int nvrtcMajor = 13, int nvrtcMinor = 0) =>
        KernelCacheKey.Compute("attention", source, options ?? Options, major, minor, nvrtcMajor, nvrtcMinor);

    [Fact]
    public void Compute_SameInputs_SameKey() => Assert.Equal(Key(), Key());

    [Fact]
    public void Compute_FileName_NamesKernelAndArchitecture()
    {
        var key = Key();

        Assert.Matches("^attention-sm90-[0-9a-f]{16}\\.cubin$", key);
    }

    [Theory]
    [InlineData("source")]
    [InlineData("options")]
    [InlineData("arch")]
    [InlineData("nvrtc")]
    public void Compute_AnyInputChanged_DifferentKey(string changed)
    {
        var other = changed switch
        {
            "source" => Key(source: "kernel source "),
            "options" => Key(options: ["--gpu-architecture=sm_90", "-DHEAD_DIM=128"]),
            "arch" => Key(major: 8, minor: 9),
            _ => Key(nvrtcMinor: 1),
        };

        Assert.NotEqual(Key(), other);
    }

    [Fact]
    public void Compute_OptionBoundariesMatter()
    {
        // ["-DA", "B"] and ["-DAB"] must not collide.
        Assert.NotEqual(Key(options: ["-DA", "B"]), Key(options: ["-DAB"]));
    }

    [Fact]
    public void DefaultDirectory_ExplicitVariable_Wins()
    {
        var env = new Dictionary<string, string?> { [KernelCacheKey.CacheDirectoryVariable] = "/x/cache", ["XDG_CACHE_HOME"] = "/xdg" };

        Assert.Equal("/x/cache", KernelCacheKey.DefaultDirectory(k => env.GetValueOrDefault(k)));
    }

    [Fact]
    public void DefaultDirectory_XdgCacheHome_UsesSparseInferenceKernels()
    {
        var env = new Dictionary<string, string?> { ["XDG_CACHE_HOME"] = "/xdg", ["HOME"] = "/home/u" };

        Assert.Equal(Path.Combine("/xdg", "sparseinference", "kernels"), KernelCacheKey.DefaultDirectory(k => env.GetValueOrDefault(k)));
    }

    [Fact]
    public void DefaultDirectory_NoXdg_FallsBackToHomeCache()
    {
        var env = new Dictionary<string, string?> { ["HOME"] = "/home/u" };

        Assert.Equal(Path.Combine("/home/u", ".cache", "sparseinference", "kernels"), KernelCacheKey.DefaultDirectory(k => env.GetValueOrDefault(k)));
    }

    [Theory]
    [InlineData("attention.cu", "attention_fwd")]
    [InlineData("attention_sm90.cu", "attention_fwd_sm90")]
    [InlineData("elementwise.cu", "layer_norm_f32")]
    [InlineData("indexing.cu", "topk_rows_f32")]
    [InlineData("selection.cu", "block_topk_select")]
    [InlineData("attention_small.cu", "attention_small")]
    public void ReadSource_EmbeddedKernel_IsPresent(string file, string entryPoint)
    {
        var source = KernelCompiler.ReadSource(file);

        Assert.Contains($"extern \"C\" __global__", source);
        Assert.Contains(entryPoint, source);
    }

    [Theory]
    [InlineData("attention.cu")]
    [InlineData("attention_sm90.cu")]
    [InlineData("attention_small.cu")]
    public void ReadSource_AttentionKernel_SplicesTheCommonHeaderOnce(string file)
    {
        var source = KernelCompiler.ReadSource(file);

        Assert.DoesNotContain("#include", source);
        Assert.Equal(1, source.Split("struct AttentionParams {").Length - 1);
        Assert.Contains("attention_task(", source);
    }

    [Fact]
    public void ReadSource_NestedInclude_SplicesEachHeaderOnce()
    {
        // elementwise.cu takes layer_norm.cuh, which takes bf16.cuh.
        var source = KernelCompiler.ReadSource("elementwise.cu");

        Assert.DoesNotContain("#include", source);
        Assert.Equal(1, source.Split("__device__ __forceinline__ u16 bf16_round(").Length - 1);
        Assert.Contains("layer_norm_vec_row(", source);
    }

    [Theory]
    [InlineData(9, 0, "sm_90a")]
    [InlineData(8, 0, "sm_80")]
    [InlineData(8, 9, "sm_89")]
    [InlineData(10, 0, "sm_100")]
    public void TargetFor_ArchSpecificSource_GetsSuffixOnComputeCapability90Only(int major, int minor, string expected) =>
        Assert.Equal(expected, KernelCompiler.TargetFor("// kernel-target: arch-specific\nvoid f();", major, minor));

    [Fact]
    public void TargetFor_PlainSource_GetsPlainTarget() =>
        Assert.Equal("sm_90", KernelCompiler.TargetFor("void f();", 9, 0));

    [Theory]
    [InlineData("attention_sm90.cu", true)]
    [InlineData("attention.cu", false)]
    [InlineData("elementwise.cu", false)]
    public void RequestsArchSpecificTarget_EmbeddedKernel_OnlyTheWgmmaKernelAsks(string file, bool expected) =>
        Assert.Equal(expected, KernelCompiler.RequestsArchSpecificTarget(KernelCompiler.ReadSource(file)));

    [Fact]
    public void Compute_ArchSpecificTargetOption_ChangesKey() =>
        Assert.NotEqual(Key(options: ["--gpu-architecture=sm_90", "-DHEAD_DIM=64"]), Key(options: ["--gpu-architecture=sm_90a", "-DHEAD_DIM=64"]));
}

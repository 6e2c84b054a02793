using SparseInference.Tensors.Cuda.Interop;

namespace SparseInference.Tensors.Cuda.Tests.Interop;

public class CudaLibraryResolverTests
{
    [Fact]
    public void Probe_MissingLibrary_NamesSonamesAndWhatToInstall()
    {
        var candidates = new Dictionary<string, string[]>
        {
            [CuBlas.Library] = ["libcublas-absent-for-test.so.99", "libcublas-absent-for-test.so.98"],
        };

        var reason = CudaLibraryResolver.Probe(candidates);

        Assert.NotNull(reason);
        Assert.StartsWith("CUDA backend unavailable", reason);
        Assert.Contains("libcublas-absent-for-test.so.99 or libcublas-absent-for-test.so.98 not found", reason);
        Assert.Contains("install cuBLAS", reason);
        Assert.Contains(CudaLibraryResolver.LibraryDirectoryVariable, reason);
    }

    [Fact]
    public void Probe_LibraryPresent_ReportsNothingMissing()
    {
        // libc is on every Linux machine these tests run on.
        var candidates = new Dictionary<string, string[]> { ["c"] = ["libc.so.6"] };

        Assert.Null(CudaLibraryResolver.Probe(candidates));
    }

    [Fact]
    public void Candidates_ProbeCuda13BeforeCuda12()
    {
        Assert.Equal(["libcublas.so.13", "libcublas.so.12"], CudaLibraryResolver.Candidates[CuBlas.Library]);
        Assert.Equal(["libcublasLt.so.13", "libcublasLt.so.12"], CudaLibraryResolver.Candidates[CuBlasLt.Library]);
        Assert.Equal(["libnvrtc.so.13", "libnvrtc.so.12"], CudaLibraryResolver.Candidates[Nvrtc.Library]);
        Assert.Equal("libcuda.so.1", CudaLibraryResolver.Candidates[CudaDriver.Library][0]);
    }

    [NoDriverFact]
    public void TryCreate_WithoutNvidiaDriver_ReportsUnavailableWithInstallHint()
    {
        var created = CudaDevice.TryCreate(out var backend, out var reason);

        Assert.False(created);
        Assert.Null(backend);
        Assert.NotNull(reason);
        Assert.Contains("libcuda.so.1", reason);
        Assert.Contains("install the NVIDIA driver", reason);
    }
}

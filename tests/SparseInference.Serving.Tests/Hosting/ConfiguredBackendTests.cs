using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Tests.Infrastructure;
using SparseInference.Serving.Tests.TestDoubles;
using SparseInference.Tensors;

namespace SparseInference.Serving.Tests.Hosting;

public sealed class ConfiguredBackendTests
{
    private readonly ListLogger<ConfiguredBackend> _log = new();

    private ConfiguredBackend Configured(string device, params IComputeBackendProvider[] providers) =>
        new(Options.Create(new SparseInferenceOptions { Device = device }), providers, _log);

    [Fact]
    public void Backend_DeviceCpu_NeverAsksAProviderAndLogsTheCpu()
    {
        var provider = new TestAcceleratorProvider(TestAccelerator.Create().Backend);
        using var configured = Configured("cpu", provider);

        Assert.Null(configured.Backend);
        Assert.Empty(provider.Opened);
        Assert.Equal("Compute device: cpu (CPU backend, AVX-512 where available)", Assert.Single(_log.Messages));
    }

    [Theory]
    [InlineData("cuda", 0)]
    [InlineData("cuda:1", 1)]
    public void Backend_CudaDevice_OpensThroughTheProviderOnFirstUseOnly(string device, int ordinal)
    {
        var (backend, _) = TestAccelerator.Create();
        var provider = new TestAcceleratorProvider(backend);
        using var configured = Configured(device, provider);
        Assert.Null(configured.Opened);
        Assert.Empty(provider.Opened);

        Assert.Same(backend, configured.Backend);
        Assert.Same(backend, configured.Backend);

        Assert.Equal([new ComputeDevice(DeviceKind.Cuda, ordinal)], provider.Opened);
        Assert.Same(backend, configured.Opened);
        Assert.Equal("Compute device: cuda:0 (test accelerator)", Assert.Single(_log.Messages));
    }

    [Fact]
    public void Backend_ProviderCannotOpen_WarnsWithTheReasonAndRunsOnTheCpu()
    {
        using var configured = Configured("cuda", new TestAcceleratorProvider(null, "no libcuda.so.1 (install the NVIDIA driver)."));

        Assert.Null(configured.Backend);
        var (level, message) = Assert.Single(_log.Entries);
        Assert.Equal(LogLevel.Warning, level);
        Assert.Equal("SparseInference:Device is 'cuda' but CUDA is unavailable: no libcuda.so.1 (install the NVIDIA driver). Falling back to the CPU.", message);
    }

    [Fact]
    public void Backend_NoProviderForTheKind_WarnsNamingTheRegistrationAndRunsOnTheCpu()
    {
        using var configured = Configured("cuda:0");

        Assert.Null(configured.Backend);
        var (level, message) = Assert.Single(_log.Entries);
        Assert.Equal(LogLevel.Warning, level);
        Assert.Contains("no CUDA backend is registered in this host", message, StringComparison.Ordinal);
        Assert.Contains("AddCudaBackend()", message, StringComparison.Ordinal);
        Assert.EndsWith("Falling back to the CPU.", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dispose_OpenedBackend_ClosesIt()
    {
        var (backend, control) = TestAccelerator.Create();
        var configured = Configured("cuda", new TestAcceleratorProvider(backend));
        _ = configured.Backend;

        configured.Dispose();

        Assert.True(control.Disposed);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:x")]
    [InlineData("CUDA")]
    [InlineData("cuda:-1")]
    [InlineData("")]
    public void TryParse_UnknownDevice_False(string text)
    {
        Assert.False(ComputeDevice.TryParse(text, out _));
        Assert.Contains($"'{text}'", Assert.Throws<FormatException>(() => ComputeDevice.Parse(text)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cpu", "cpu")]
    [InlineData("cuda", "cuda:0")]
    [InlineData("cuda:3", "cuda:3")]
    public void Parse_KnownDevice_CanonicalName(string text, string canonical)
    {
        Assert.Equal(canonical, ComputeDevice.Parse(text).ToString());
    }
}

using Microsoft.Extensions.Hosting;
using SparseInference.Server.Hosting;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Server.Tests.Hosting;

public sealed class ListenerOptionsValidatorTests : IDisposable
{
    private readonly string _contentRoot = Directory.CreateTempSubdirectory("si-root-").FullName;

    public void Dispose() => Directory.Delete(_contentRoot, recursive: true);

    private string[] Failures(Action<SparseInferenceOptions> change)
    {
        var options = new SparseInferenceOptions();
        change(options);
        var result = new ListenerOptionsValidator(new TestHostEnvironment(_contentRoot)).Validate(null, options);
        return result.Failed ? [.. result.Failures!] : [];
    }

    [Fact]
    public void Validate_Defaults_Succeed()
    {
        Assert.Empty(Failures(_ => { }));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(70000)]
    public void Validate_PortOutOfRange_NamesKeyAndValue(int port)
    {
        var failure = Assert.Single(Failures(o => o.Ports.Grpc = port));
        Assert.Contains("SparseInference:Ports:Grpc", failure);
        Assert.Contains(port.ToString(), failure);
    }

    [Fact]
    public void Validate_DuplicatePorts_NamesBothKeys()
    {
        var failure = Assert.Single(Failures(o => o.Ports.Admin = o.Ports.Rest));
        Assert.Contains("Ports:Rest and Ports:Admin", failure);
    }

    [Fact]
    public void Validate_TinyLimits_EachNamed()
    {
        var failures = Failures(o =>
        {
            o.Limits.MaxGrpcMessageBytes = 10;
            o.Limits.MaxRequestBodyBytes = 10;
        });
        Assert.Equal(2, failures.Length);
    }

    [Fact]
    public void Validate_GrpcMessageLimitAtTheIntMaximum_RefusedNamingKeyBoundAndValue()
    {
        // A frame's length prefix of 2^31 − 1 must always be over the limit: the limit stops at 1 GiB.
        var failure = Assert.Single(Failures(o => o.Limits.MaxGrpcMessageBytes = int.MaxValue));
        Assert.Equal("SparseInference:Limits:MaxGrpcMessageBytes must be in 1024..1073741824, got 2147483647.", failure);
    }

    [Fact]
    public void Validate_LibrarySettings_LeftToTheLibrary()
    {
        // The repository, the device and the drain are the serving library's to check.
        Assert.Empty(Failures(o =>
        {
            o.ModelRepository = "nowhere";
            o.Device = "gpu";
            o.Shutdown.DrainDelaySeconds = -1;
        }));
    }
}

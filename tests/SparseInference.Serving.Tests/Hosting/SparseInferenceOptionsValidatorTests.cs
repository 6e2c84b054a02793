using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Hosting;
using SparseInference.Serving.Hosting;

namespace SparseInference.Serving.Tests.Hosting;

public sealed class SparseInferenceOptionsValidatorTests : IDisposable
{
    private readonly string _contentRoot = Directory.CreateTempSubdirectory("si-root-").FullName;

    public SparseInferenceOptionsValidatorTests() => Directory.CreateDirectory(Path.Combine(_contentRoot, "models"));

    public void Dispose() => Directory.Delete(_contentRoot, recursive: true);

    private string[] Failures(Action<SparseInferenceOptions> change)
    {
        var options = new SparseInferenceOptions();
        change(options);
        var result = new SparseInferenceOptionsValidator(new Environment(_contentRoot)).Validate(null, options);
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
    public void Validate_MissingRepository_NamesPathsLookedAt()
    {
        var failure = Assert.Single(Failures(o => o.ModelRepository = "nowhere"));
        Assert.Contains("SparseInference:ModelRepository", failure);
        Assert.Contains(Path.Combine(_contentRoot, "nowhere"), failure);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:x")]
    public void Validate_UnknownDevice_Fails(string device)
    {
        Assert.Contains($"'{device}'", Assert.Single(Failures(o => o.Device = device)));
    }

    [Fact]
    public void Validate_TinyLimitsAndNegativeDrain_EachNamed()
    {
        var failures = Failures(o =>
        {
            o.Limits.MaxGrpcMessageBytes = 10;
            o.Limits.MaxRequestBodyBytes = 10;
            o.Shutdown.DrainDelaySeconds = -1;
            o.Shutdown.TimeoutSeconds = 0;
        });
        Assert.Equal(4, failures.Length);
    }

    [Fact]
    public void Validate_GrpcMessageLimitAtTheIntMaximum_RefusedNamingKeyBoundAndValue()
    {
        // A frame's length prefix of 2^31 − 1 must always be over the limit: the limit stops at 1 GiB.
        var failure = Assert.Single(Failures(o => o.Limits.MaxGrpcMessageBytes = int.MaxValue));
        Assert.Equal("SparseInference:Limits:MaxGrpcMessageBytes must be in 1024..1073741824, got 2147483647.", failure);
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(1048575L)]
    public void Validate_InFlightMemoryBelowOneMebibyte_RefusedNamingKeyAndValue(long bytes)
    {
        var failure = Assert.Single(Failures(o => o.Limits.InFlightMemoryBytes = bytes));
        Assert.Contains("SparseInference:Limits:InFlightMemoryBytes", failure);
        Assert.Contains(bytes.ToString(), failure);
    }

    [Fact]
    public void Validate_InFlightMemoryZero_MeansDerivedAndIsValid()
    {
        Assert.Empty(Failures(o => o.Limits.InFlightMemoryBytes = 0));
    }

    [Fact]
    public void ResolveRepositoryPath_Relative_ResolvesAgainstContentRoot()
    {
        Assert.Equal(Path.Combine(_contentRoot, "models"), SparseInferenceOptionsValidator.ResolveRepositoryPath(new Environment(_contentRoot), "models"));
    }

    private sealed class Environment(string root) : IHostEnvironment
    {
        public string EnvironmentName { get; set; } = "Test";
        public string ApplicationName { get; set; } = "Test";
        public string ContentRootPath { get; set; } = root;
        public IFileProvider ContentRootFileProvider { get; set; } = new NullFileProvider();
    }
}

using Microsoft.Extensions.Hosting;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Tests.Infrastructure;

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
        var result = new SparseInferenceOptionsValidator(new TestHostEnvironment(_contentRoot)).Validate(null, options);
        return result.Failed ? [.. result.Failures!] : [];
    }

    [Fact]
    public void Validate_Defaults_Succeed()
    {
        Assert.Empty(Failures(_ => { }));
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
    public void Validate_NegativeDrainAndZeroTimeout_EachNamed()
    {
        var failures = Failures(o =>
        {
            o.Shutdown.DrainDelaySeconds = -1;
            o.Shutdown.TimeoutSeconds = 0;
        });
        Assert.Equal(2, failures.Length);
    }

    [Fact]
    public void Validate_ListenerSettingsOutOfRange_LeftToTheHost()
    {
        // Ports, body and message limits and TLS are the host's to check (its listener validator), not the library's.
        Assert.Empty(Failures(o =>
        {
            o.Ports.Grpc = 0;
            o.Limits.MaxGrpcMessageBytes = 10;
        }));
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
        Assert.Equal(Path.Combine(_contentRoot, "models"), SparseInferenceOptionsValidator.ResolveRepositoryPath(new TestHostEnvironment(_contentRoot), "models"));
    }
}

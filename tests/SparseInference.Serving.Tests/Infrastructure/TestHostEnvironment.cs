using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Hosting;

namespace SparseInference.Serving.Tests.Infrastructure;

/// <summary>A host environment whose content root is <paramref name="contentRoot"/>, for validators that resolve paths against it.</summary>
public sealed class TestHostEnvironment(string contentRoot) : IHostEnvironment
{
    public string EnvironmentName { get; set; } = "Test";
    public string ApplicationName { get; set; } = "Test";
    public string ContentRootPath { get; set; } = contentRoot;
    public IFileProvider ContentRootFileProvider { get; set; } = new NullFileProvider();
}

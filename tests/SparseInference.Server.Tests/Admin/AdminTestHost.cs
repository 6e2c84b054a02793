using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SparseInference.Server.Admin;
using SparseInference.Serving.Tests.Variants;
using SparseInference.Serving.Variants;

namespace SparseInference.Server.Tests.Admin;

/// <summary>A real Kestrel host on two loopback ports (public and admin), wired as the service wires it.</summary>
internal sealed class AdminTestHost : IAsyncDisposable
{
    public const string Token = "test-admin-token-0123456789";

    private readonly WebApplication _app;

    private AdminTestHost(WebApplication app, int publicPort, int adminPort, TestModelSource source, VariantRegistry registry, string stateDirectory)
    {
        StateDirectory = stateDirectory;
        _app = app;
        PublicPort = publicPort;
        AdminPort = adminPort;
        Source = source;
        Registry = registry;
    }

    public int PublicPort { get; }

    public int AdminPort { get; }

    public TestModelSource Source { get; }

    /// <summary>The host's own state store directory.</summary>
    public string StateDirectory { get; }

    public VariantRegistry Registry { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<AdminTestHost> StartAsync(string? token = Token, TestModelSource? source = null)
    {
        source ??= new TestModelSource();
        var publicPort = FreePort();
        var adminPort = FreePort();
        var stateDirectory = VariantTestKit.TempStateDirectory();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, publicPort);
            k.Listen(IPAddress.Loopback, adminPort);
        });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["SparseInference:Admin:Token"] = token,
            ["SparseInference:Admin:Port"] = adminPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["SparseInference:State:Directory"] = stateDirectory,
            ["SparseInference:State:LockTimeoutMilliseconds"] = "500",
        });
        builder.Services.AddSingleton<IVariantModelSource>(source);
        builder.Services.AddSparseInferenceVariants();
        builder.Services.AddAdminApi();
        var app = builder.Build();
        app.MapSparseInferenceAdmin();
        await app.StartAsync();
        var registry = app.Services.GetRequiredService<VariantCatalog>().AddModel(VariantTestKit.Model, new SpecEchoModel(), new VariantDefinition("dense", "dense"));
        return new AdminTestHost(app, publicPort, adminPort, source, registry, stateDirectory);
    }

    public HttpClient Client(string? bearer = Token, bool adminPort = true)
    {
        var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{(adminPort ? AdminPort : PublicPort)}") };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

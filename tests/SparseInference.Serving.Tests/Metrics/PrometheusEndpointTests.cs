using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Tests.Metrics;

public sealed class PrometheusEndpointTests
{
    [Fact]
    public async Task MapPrometheusMetrics_Get_ServesTextFormatWithRecordedSeries()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddServingMetrics();
        await using var app = builder.Build();
        app.MapPrometheusMetrics("/metrics");
        await app.StartAsync();

        app.Services.GetRequiredService<ServingMetrics>().RecordRejection(new VariantLabels("m", "1", "dense"), RejectionReasons.Deadline);
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        using var client = new HttpClient { BaseAddress = new Uri(address) };
        using var response = await client.GetAsync("/metrics");
        var body = await response.Content.ReadAsStringAsync();
        await app.StopAsync();

        Assert.True(response.IsSuccessStatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        var parsed = PrometheusText.Parse(body);
        Assert.Equal(1, parsed.Value("sparseinference_rejections_total", ("model", "m"), ("reason", "deadline")));
    }
}

using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Serilog;
using Serilog.Events;
using SparseInference.Serving.Hosting;

namespace SparseInference.Server.Observability.Logging;

/// <summary>
/// One log line per request (Serilog's request logging) in place of ASP.NET Core's several: listener, method, path, status,
/// duration and trace id, plus the OIP fields of an inference (<see cref="DiagnosticContextRequestLog"/>). Probes and scrapes
/// log at Debug, a 500 or an escaped exception at Error, other 5xx answers (unavailable, overloaded, timed out) at Warning,
/// everything else at Information.
/// </summary>
public static class RequestLoggingApplicationBuilderExtensions
{
    /// <summary>Strings render without quotes (<c>:l</c>), so the JSON's rendered message reads as the console line does.</summary>
    public const string MessageTemplate =
        "{" + RequestLogFields.Listener + ":l} {RequestMethod:l} {RequestPath:l} responded {StatusCode} in {Elapsed:0.000} ms{" + RequestLogFields.Inference + ":l}";

    public static IApplicationBuilder UseSparseInferenceRequestLogging(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var ports = app.ApplicationServices.GetRequiredService<IOptions<SparseInferenceOptions>>().Value.Ports;
        var diagnostics = app.ApplicationServices.GetRequiredService<IDiagnosticContext>();
        var logger = app.ApplicationServices.GetRequiredService<Serilog.ILogger>();
        app.UseSerilogRequestLogging(options =>
        {
            options.Logger = logger;
            options.MessageTemplate = MessageTemplate;
            options.GetLevel = (context, _, exception) => Level(context, exception, ports);
            options.EnrichDiagnosticContext = (diagnostic, context) => Enrich(diagnostic, context, ports);
        });
        // The inference summary is empty unless an inference fills it in.
        app.Use((context, next) =>
        {
            diagnostics.Set(RequestLogFields.Inference, string.Empty);
            return next(context);
        });
        return app;
    }

    private static LogEventLevel Level(HttpContext context, Exception? exception, PortOptions ports)
    {
        if (IsProbeOrScrape(context, ports))
            return LogEventLevel.Debug;
        if (exception is not null || context.Response.StatusCode == StatusCodes.Status500InternalServerError)
            return LogEventLevel.Error;
        return context.Response.StatusCode > StatusCodes.Status500InternalServerError ? LogEventLevel.Warning : LogEventLevel.Information;
    }

    private static bool IsProbeOrScrape(HttpContext context, PortOptions ports)
    {
        var path = context.Request.Path;
        return context.Connection.LocalPort == ports.Metrics
            || path.StartsWithSegments("/v2/health", StringComparison.Ordinal)
            || path.StartsWithSegments("/grpc.health.v1.Health", StringComparison.Ordinal);
    }

    private static void Enrich(IDiagnosticContext diagnostic, HttpContext context, PortOptions ports)
    {
        var port = context.Connection.LocalPort;
        diagnostic.Set(RequestLogFields.Listener, port == ports.Rest ? "rest" : port == ports.Grpc ? "grpc" : port == ports.Metrics ? "metrics" : port == ports.Admin ? "admin" : "other");
        if (Activity.Current is { } activity)
            diagnostic.Set(RequestLogFields.TraceId, activity.TraceId.ToHexString());
        if (port == ports.Grpc && GrpcStatus(context) is { } status)
            diagnostic.Set(RequestLogFields.GrpcStatus, status);
    }

    /// <summary>The call's <c>grpc-status</c>: from the trailers, or from the headers of a trailers-only response.</summary>
    private static string? GrpcStatus(HttpContext context)
    {
        var trailers = context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers;
        if (trailers is not null && trailers.TryGetValue("grpc-status", out var fromTrailers))
            return fromTrailers.ToString();
        return context.Response.Headers.TryGetValue("grpc-status", out var fromHeaders) ? fromHeaders.ToString() : null;
    }
}

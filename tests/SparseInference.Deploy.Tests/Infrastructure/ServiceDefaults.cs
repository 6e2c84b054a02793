using System.Text.Json;

namespace SparseInference.Deploy.Tests.Infrastructure;

/// <summary>
/// The server's configuration defaults (section "SparseInference") the deployment must agree with, read
/// from src/SparseInference.Server/appsettings.json.
/// </summary>
public sealed record ServiceDefaults(int RestPort, int GrpcPort, int MetricsPort, int AdminPort,
    int DrainDelaySeconds, int ShutdownTimeoutSeconds, string Source)
{
    private static readonly Lazy<ServiceDefaults> Loaded = new(Load);

    public static ServiceDefaults Current => Loaded.Value;

    public IReadOnlyList<int> AllPorts => [RestPort, GrpcPort, MetricsPort, AdminPort];

    public static ServiceDefaults Parse(string json, string source)
    {
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions
        {
            CommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
        });
        var section = Child(document.RootElement, "SparseInference", source);
        var ports = Child(section, "Ports", source);
        var shutdown = Child(section, "Shutdown", source);
        return new ServiceDefaults(
            Int(ports, "Rest", source), Int(ports, "Grpc", source), Int(ports, "Metrics", source), Int(ports, "Admin", source),
            Int(shutdown, "DrainDelaySeconds", source), Int(shutdown, "TimeoutSeconds", source), source);
    }

    private static ServiceDefaults Load()
    {
        var path = RepositoryLayout.PathOf("src", "SparseInference.Server", "appsettings.json");
        return Parse(File.ReadAllText(path), path);
    }

    private static JsonElement Child(JsonElement parent, string name, string source) =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var child)
            ? child
            : throw new InvalidDataException($"{source}: expected a '{name}' object, actual none");

    private static int Int(JsonElement parent, string name, string source) =>
        Child(parent, name, source) is { ValueKind: JsonValueKind.Number } n && n.TryGetInt32(out var value)
            ? value
            : throw new InvalidDataException($"{source}: expected '{name}' to be an integer, actual {Child(parent, name, source)}");
}

using System.Reflection;
using Microsoft.Extensions.Logging;
using SparseInference.Server.Hosting;
using SparseInference.Serving;
using SparseInference.Tensors.Cuda;

namespace SparseInference.Server.Tests.Observability.Logging;

/// <summary><see cref="EventIds"/> is the one registry: every logging method of the service takes its id from it, none twice.</summary>
public sealed class EventIdRegistryTests
{
    private static readonly Assembly[] Service =
    [
        typeof(EventIds).Assembly, typeof(SparseInferenceHostExtensions).Assembly, typeof(CudaBackendProvider).Assembly,
        typeof(Models.EncoderModel).Assembly, typeof(Tensors.IComputeBackend).Assembly,
    ];

    private static readonly Dictionary<int, string> Registry = typeof(EventIds)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral)
        .ToDictionary(f => (int)f.GetRawConstantValue()!, f => f.Name);

    private static List<(string Method, int Id)> LoggingMethods() =>
    [
        .. Service.SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Select(m => (Method: $"{m.DeclaringType!.FullName}.{m.Name}", Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is not null)
            .Select(m => (m.Method, m.Attribute!.EventId)),
    ];

    [Fact]
    public void LoggingMethods_EachTakesItsIdFromTheRegistry()
    {
        var methods = LoggingMethods();
        Assert.True(methods.Count >= 30, $"found only {methods.Count} logging methods: the scan misses some");

        var outside = methods.Where(m => !Registry.ContainsKey(m.Id)).Select(m => $"{m.Method}: {m.Id}").ToList();

        Assert.True(outside.Count == 0, "event ids not in EventIds: " + string.Join("; ", outside));
    }

    [Fact]
    public void LoggingMethods_NoIdUsedTwice()
    {
        var shared = LoggingMethods().GroupBy(m => m.Id).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key} ({Registry.GetValueOrDefault(g.Key)}): {string.Join(", ", g.Select(m => m.Method))}").ToList();

        Assert.True(shared.Count == 0, "event ids used by more than one message: " + string.Join("; ", shared));
    }

    [Fact]
    public void Registry_EveryIdListedOnceAndUsed()
    {
        var constants = typeof(EventIds).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral).ToList();
        var used = LoggingMethods().Select(m => m.Id).ToHashSet();

        Assert.Equal(constants.Count, Registry.Count);
        Assert.Empty(Registry.Where(r => !used.Contains(r.Key)).Select(r => r.Value));
    }
}

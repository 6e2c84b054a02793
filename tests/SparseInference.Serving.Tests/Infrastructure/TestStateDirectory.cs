namespace SparseInference.Serving.Tests.Infrastructure;

/// <summary>
/// A state store directory of its own for each test server or service provider, so rollout state written by one
/// never reaches another (nor the server project's content root); all of them go when the test process exits.
/// Shared with the functional tests (linked there).
/// </summary>
public static class TestStateDirectory
{
    private static readonly Lazy<string> Root = new(() =>
    {
        var root = Directory.CreateTempSubdirectory("si-functional-state-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // A temp directory left behind is harmless.
            }
        };
        return root;
    });

    public const string Key = "SparseInference:State:Directory";

    public static string Create() => Directory.CreateDirectory(Path.Combine(Root.Value, Guid.NewGuid().ToString("N"))).FullName;
}

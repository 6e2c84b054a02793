namespace SparseInference.Onboard;

/// <summary>
/// A named entry point, not top-level statements: the functional tests reference this assembly next to the server,
/// whose top-level <c>Program</c> they host. Ctrl+C ends the process as it is: a run stores its baseline in one request
/// at the end, or not at all.
/// </summary>
internal static class OnboardProgram
{
    public static Task<int> Main(string[] args) => OnboardCommand.RunAsync(args, Console.In, Console.Out, Console.Error, CancellationToken.None);
}

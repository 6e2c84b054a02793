namespace SparseInference.Evaluate;

/// <summary>
/// The entry point, as a named class rather than top-level statements: the functional tests reference this
/// assembly beside the server, whose <c>Program</c> they host.
/// </summary>
internal static class EvaluateProgram
{
    public static async Task<int> Main(string[] args)
    {
        EvaluateCommand command;
        try
        {
            command = EvaluateCommand.Parse(args);
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message);
            Console.Error.WriteLine(EvaluateCommand.Usage);
            return 2;
        }
        if (command.Help)
        {
            Console.WriteLine(EvaluateCommand.Usage);
            return 0;
        }

        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        return await command.RunAsync(Console.Out, Console.Error, cancel.Token).ConfigureAwait(false);
    }
}

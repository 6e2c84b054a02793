using SparseInference.Evaluate;

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
return await command.RunAsync(Console.Out, Console.Error, cancel.Token);

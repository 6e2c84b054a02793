namespace SparseInference.Serving.Tests.Infrastructure;

/// <summary>
/// Waits for a condition that other threads make true. The wall-clock limit only turns a hang into a
/// failure; no test relies on time passing for its outcome.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    public static async Task TrueAsync(Func<bool> condition, string what)
    {
        var started = DateTime.UtcNow;
        while (!condition())
        {
            if (DateTime.UtcNow - started > Limit)
                throw new TimeoutException($"Timed out waiting until {what}.");
            await Task.Delay(1);
        }
    }

    public static async Task<T> CompletesAsync<T>(Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(Limit);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Timed out waiting until {what}.");
        }
    }
}

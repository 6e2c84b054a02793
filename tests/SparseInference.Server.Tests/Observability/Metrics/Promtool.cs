using System.ComponentModel;
using System.Diagnostics;

namespace SparseInference.Server.Tests.Observability.Metrics;

/// <summary>Runs the real <c>promtool check metrics</c> (Debian package <c>prometheus</c>).</summary>
public static class Promtool
{
    public sealed record Result(int ExitCode, string Output);

    public static async Task<Result> CheckMetricsAsync(string exposition)
    {
        var start = new ProcessStartInfo("promtool", "check metrics")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("promtool did not start.");
        }
        catch (Win32Exception ex)
        {
            throw new InvalidOperationException(
                "promtool was not found on PATH. Install it (Debian/Ubuntu: apt-get install prometheus); tools/test.sh installs it.", ex);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.StandardInput.WriteAsync(exposition);
            process.StandardInput.Close();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            return new Result(process.ExitCode, ((await stdout) + (await stderr)).Trim());
        }
    }
}

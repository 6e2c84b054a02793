using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.Tests.Infrastructure;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// The built server as its own process (<c>dotnet SparseInference.Server.dll</c>) on free loopback ports, serving a
/// temporary copy of the repository's <c>models/</c>; configured through environment variables as a deployment does.
/// </summary>
internal sealed class LiveServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private LiveServerProcess(Process process, string repository, int[] ports, bool readOutput)
    {
        _process = process;
        RepositoryRoot = repository;
        (RestPort, GrpcPort, MetricsPort, AdminPort) = (ports[0], ports[1], ports[2], ports[3]);
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        if (readOutput)
        {
            _process.BeginOutputReadLine();
        }

        _process.BeginErrorReadLine();
    }

    public string RepositoryRoot { get; }
    public int RestPort { get; }
    public int GrpcPort { get; }
    public int MetricsPort { get; }
    public int AdminPort { get; }
    public int ProcessId => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>The lines written so far to standard output and standard error.</summary>
    public IReadOnlyList<string> LogLines => Log.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();

    /// <summary>The server assembly built next to these tests through the project reference, same configuration.</summary>
    public static string ServerAssembly
    {
        get
        {
            // AppContext.BaseDirectory is .../bin/<Configuration>/<tfm>/
            var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var configuration = tfmDir.Parent!.Name;
            return Path.Combine(RepositoryPaths.Root, "src", "SparseInference.Server", "bin", configuration, tfmDir.Name, "SparseInference.Server.dll");
        }
    }

    /// <summary>
    /// Starts the server; <paramref name="prepareRepository"/> may add or change models in its repository copy first;
    /// <paramref name="readOutput"/> false leaves its standard output unread, so once the pipe's buffer is full every
    /// console write blocks, as on a stalled terminal or log collector.
    /// </summary>
    /// <param name="workingDirectory">The process's working directory (its content root); default the output folder, where appsettings.json is.</param>
    public static LiveServerProcess Start(
        IReadOnlyDictionary<string, string>? settings = null, Action<string>? prepareRepository = null, bool readOutput = true, string? workingDirectory = null)
    {
        var assembly = ServerAssembly;
        if (!File.Exists(assembly))
        {
            throw new FileNotFoundException($"server assembly: expected {assembly}, actual missing");
        }

        var repository = Directory.CreateTempSubdirectory("si-live-repo-").FullName;
        foreach (var file in Directory.EnumerateFiles(Path.Combine(RepositoryPaths.Root, "models"), "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(repository, Path.GetRelativePath(Path.Combine(RepositoryPaths.Root, "models"), file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }

        prepareRepository?.Invoke(repository);
        var ports = FreePorts(4);
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetDirectoryName(assembly)!,
        };
        start.ArgumentList.Add(assembly);
        start.Environment.Remove("ASPNETCORE_URLS");
        start.Environment.Remove("ASPNETCORE_HTTP_PORTS");
        start.Environment.Remove("ASPNETCORE_ENVIRONMENT");
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["SparseInference__Ports__Rest"] = ports[0].ToString(CultureInfo.InvariantCulture);
        start.Environment["SparseInference__Ports__Grpc"] = ports[1].ToString(CultureInfo.InvariantCulture);
        start.Environment["SparseInference__Ports__Metrics"] = ports[2].ToString(CultureInfo.InvariantCulture);
        start.Environment["SparseInference__Ports__Admin"] = ports[3].ToString(CultureInfo.InvariantCulture);
        start.Environment["SparseInference__ModelRepository"] = repository;
        start.Environment["SparseInference__State__Directory"] = TestStateDirectory.Create();
        foreach (var (name, value) in settings ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        return new LiveServerProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet: the server did not start"), repository, ports, readOutput);
    }

    /// <summary>Polls /v2/health/ready until 200, or fails with the server's log.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (HasExited)
            {
                throw new InvalidOperationException($"server exited with {ExitCode} before ready:\n{Log}");
            }

            try
            {
                if ((await http.GetAsync($"http://127.0.0.1:{RestPort}/v2/health/ready")).StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Slow start on a loaded machine.
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"server not ready after {timeout}:\n{Log}");
    }

    /// <summary>SIGTERM, as an orchestrator sends it.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("bash", ["-c", $"kill -TERM {ProcessId.ToString(CultureInfo.InvariantCulture)}"]);
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -TERM {ProcessId}: exit code {kill.ExitCode}");
        }
    }

    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    /// <summary>The process's resident set now (<c>VmRSS</c>).</summary>
    public long ResidentBytes() => ProcStatusBytes("VmRSS:");

    /// <summary>The most the resident set has been since start or the last <see cref="ResetPeakResident"/> (<c>VmHWM</c>).</summary>
    public long PeakResidentBytes() => ProcStatusBytes("VmHWM:");

    /// <summary>Starts a new peak measurement (Linux: writing 5 to clear_refs resets the resident high-water mark).</summary>
    public void ResetPeakResident() => File.WriteAllText($"/proc/{ProcessId}/clear_refs", "5");

    private long ProcStatusBytes(string field)
    {
        var line = File.ReadLines($"/proc/{ProcessId}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        var kilobytes = long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return kilobytes * 1024;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(TimeSpan.FromSeconds(10));
        }

        _process.Dispose();
        try
        {
            Directory.Delete(RepositoryRoot, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}

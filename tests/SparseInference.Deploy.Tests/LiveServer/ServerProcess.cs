using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.LiveServer;

/// <summary>
/// The real SparseInference server as its own process, started the way the Deployment starts it: a
/// content root holding the server's appsettings.json and the ConfigMap's appsettings.Production.json,
/// and the Deployment's environment variables.
/// </summary>
public sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private readonly string _contentRoot;

    private ServerProcess(Process process, string contentRoot)
    {
        _process = process;
        _contentRoot = contentRoot;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

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

    public static string ServerAssembly =>
        typeof(ServerProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ServerAssembly").Value
        ?? throw new InvalidOperationException("ServerAssembly metadata: expected a path, actual none");

    /// <param name="productionSettings">The text of appsettings.Production.json (the ConfigMap's file).</param>
    /// <param name="environment">Environment variables, as the Deployment sets them.</param>
    public static ServerProcess Start(string productionSettings, IReadOnlyDictionary<string, string> environment)
    {
        var assembly = Path.GetFullPath(ServerAssembly);
        if (!File.Exists(assembly))
        {
            throw new FileNotFoundException($"server assembly: expected {assembly} (built through the project reference), actual missing");
        }

        var contentRoot = Directory.CreateTempSubdirectory("sparseinference-content-").FullName;
        File.Copy(Path.Combine(Path.GetDirectoryName(assembly)!, "appsettings.json"), Path.Combine(contentRoot, "appsettings.json"));
        File.WriteAllText(Path.Combine(contentRoot, "appsettings.Production.json"), productionSettings);

        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = contentRoot,
        };
        start.ArgumentList.Add(assembly);
        start.ArgumentList.Add("--contentRoot");
        start.ArgumentList.Add(contentRoot);
        // Nothing inherited may decide the outcome: clear what the test host's environment might set.
        start.Environment.Remove("ASPNETCORE_URLS");
        start.Environment.Remove("ASPNETCORE_HTTP_PORTS");
        start.Environment.Remove("DOTNET_ENVIRONMENT");
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        return new ServerProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet: the server did not start"), contentRoot);
    }

    /// <summary>Sends SIGTERM, as the kubelet does after the preStop hook.</summary>
    public void Terminate()
    {
        // bash's builtin kill, so that no separate kill binary is needed.
        var result = ExternalTool.Run("bash", ["-c", $"kill -TERM {ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)}"]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -TERM {ProcessId}: {result.Describe()}");
        }
    }

    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    public static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
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
            Directory.Delete(_contentRoot, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
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

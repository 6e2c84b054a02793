using System.Net;
using System.Net.Sockets;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// A loopback TCP proxy in front of the replicas' REST ports, behaving like a Kubernetes Service: each
/// client connection goes to the next backend in round-robin order (per connection, as kube-proxy balances),
/// and only to backends whose readiness probe (<c>GET /v2/health/ready</c>, polled every
/// <see cref="ProbeInterval"/>) last answered 200, as the endpoints controller keeps only ready pods.
/// A backend that refuses the connection is skipped for that connection (nothing was sent yet, so this is
/// safe at any layer) until its probe passes again. A backend that dies mid-request resets the client's
/// connection: that is what the client's retry policy is for.
/// </summary>
public sealed class RoundRobinProxy : IAsyncDisposable
{
    public static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(100);

    private readonly IReadOnlyList<IPEndPoint> _backends;
    private readonly bool[] _ready;
    private readonly long[] _connections;
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly HttpClient _probe = new() { Timeout = TimeSpan.FromMilliseconds(500) };
    private readonly Task _acceptLoop;
    private readonly Task _probeLoop;
    private long _next;

    public RoundRobinProxy(IReadOnlyList<IPEndPoint> backends)
    {
        _backends = backends;
        _ready = Enumerable.Repeat(true, backends.Count).ToArray();
        _connections = new long[backends.Count];
        _listener.Start();
        _probeLoop = Task.Run(ProbeLoopAsync);
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public Uri BaseAddress => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

    /// <summary>Client connections handed to each backend so far.</summary>
    public long[] ConnectionsPerBackend
    {
        get
        {
            var result = new long[_connections.Length];
            for (var i = 0; i < result.Length; i++)
            {
                result[i] = Interlocked.Read(ref _connections[i]);
            }

            return result;
        }
    }

    /// <summary>Whether the backend's last readiness probe passed.</summary>
    public bool IsReady(int backend) => Volatile.Read(ref _ready[backend]);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await Task.WhenAll(_acceptLoop, _probeLoop);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }

        _probe.Dispose();
        _stop.Dispose();
    }

    private async Task ProbeLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            await Task.WhenAll(_backends.Select(async (backend, i) => Volatile.Write(ref _ready[i], await ProbeAsync(backend))));
            try
            {
                await Task.Delay(ProbeInterval, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<bool> ProbeAsync(IPEndPoint backend)
    {
        try
        {
            using var response = await _probe.GetAsync(new Uri($"http://{backend}/v2/health/ready"), _stop.Token);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or OperationCanceledException)
        {
            return false;
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            using var backend = await ConnectAsync();
            if (backend is null)
            {
                // No ready backend accepted: the client sees its connection closed and may retry.
                return;
            }

            var clientStream = client.GetStream();
            var backendStream = backend.GetStream();
            using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            var upstream = Pipe(clientStream, backendStream, backend.Client, done.Token);
            var downstream = Pipe(backendStream, clientStream, client.Client, done.Token);
            if (await Task.WhenAny(upstream, downstream) == downstream && !await downstream)
            {
                // The backend died (reset): reset the client too, at once, rather than leave it waiting for an answer.
                client.Client.LingerState = new LingerOption(true, 0);
                await done.CancelAsync();
            }
            else if (upstream.IsCompleted && !await upstream)
            {
                backend.Client.LingerState = new LingerOption(true, 0);
                await done.CancelAsync();
            }

            await Task.WhenAll(upstream, downstream);
        }
    }

    /// <summary>The next ready backend in round-robin order that accepts a connection; null when none does.</summary>
    private async Task<TcpClient?> ConnectAsync()
    {
        // Round robin over the ready backends only, so a backend out of rotation does not double its neighbour's share.
        var ready = Enumerable.Range(0, _backends.Count).Where(IsReady).ToList();
        var start = Interlocked.Increment(ref _next);
        for (var attempt = 0; attempt < ready.Count; attempt++)
        {
            var index = ready[(int)((start + attempt) % ready.Count)];
            var backend = new TcpClient { NoDelay = true };
            try
            {
                await backend.ConnectAsync(_backends[index], _stop.Token);
                Interlocked.Increment(ref _connections[index]);
                return backend;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                backend.Dispose();
                // Refused: out of rotation until the probe says otherwise.
                Volatile.Write(ref _ready[index], false);
            }
        }

        return null;
    }

    /// <summary>Copies until the source ends (true: the destination is half-closed in turn) or fails (false).</summary>
    private static async Task<bool> Pipe(NetworkStream source, NetworkStream destination, Socket destinationSocket, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
            {
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }

            destinationSocket.Shutdown(SocketShutdown.Send);
            return true;
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
    }
}

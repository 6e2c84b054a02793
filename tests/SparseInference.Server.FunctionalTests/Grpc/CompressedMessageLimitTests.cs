using System.Globalization;
using System.IO.Compression;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Reliability;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Grpc;

/// <summary>
/// A gzip message that inflates past the receive limit is refused without being inflated: grpc-dotnet 2.85 stops
/// decompressing at the limit (its check of the compressed length alone would let a small bomb through).
/// </summary>
public sealed class CompressedMessageLimitTests
{
    private const int LimitBytes = 4 << 20;
    private const long InflatedBytes = 1L << 30;

    /// <summary>Peak-memory growth a refused bomb may cost; inflating it whole would take at least its 1 GiB.</summary>
    private const long PeakGrowthBoundBytes = 256L << 20;

    [Fact]
    public async Task ModelInfer_GzipBombOfOneGibibyte_ResourceExhaustedAndPeakMemoryBarelyMoves()
    {
        var bomb = GzipZeros(InflatedBytes);
        Assert.True(bomb.Length < LimitBytes, $"the bomb must pass the compressed-length check: {bomb.Length} bytes");
        using var server = LiveServerProcess.Start(new Dictionary<string, string>
        {
            ["SparseInference__Limits__MaxGrpcMessageBytes"] = LimitBytes.ToString(CultureInfo.InvariantCulture),
            ["SparseInference__Shutdown__DrainDelaySeconds"] = "0",
        });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        using var grpc = new GrpcTestClient(server.GrpcPort);
        Assert.Equal(GrpcStatusCode.OK, (await grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Status);
        var peakBefore = PeakResidentBytes(server.ProcessId);

        var result = await grpc.CallAsync(
            GrpcTestClient.Service + "ModelInfer", GrpcTestClient.FrameCompressed(bomb), ModelInferResponse.Parser,
            new Dictionary<string, string> { ["grpc-encoding"] = "gzip" });

        var growth = PeakResidentBytes(server.ProcessId) - peakBefore;
        Assert.True(growth < PeakGrowthBoundBytes, $"peak resident memory grew {growth / 1048576.0:F0} MiB refusing a {InflatedBytes >> 20} MiB bomb ({result.Status}: {result.Message})");
        Assert.Equal(GrpcStatusCode.ResourceExhausted, result.Status);
        Assert.Contains("exceeds the maximum configured message size", result.Message);
        Assert.Equal(GrpcStatusCode.OK, (await grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Status);
    }

    /// <summary><paramref name="length"/> zero bytes, gzip-compressed (about a thousandth of their size), without holding them.</summary>
    private static byte[] GzipZeros(long length)
    {
        var zeros = new byte[1 << 20];
        using var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            for (long written = 0; written < length; written += zeros.Length)
            {
                gzip.Write(zeros);
            }
        }

        return compressed.ToArray();
    }

    /// <summary>The process's peak resident set (VmHWM in /proc/PID/status).</summary>
    private static long PeakResidentBytes(int processId)
    {
        var line = File.ReadLines($"/proc/{processId}/status").Single(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}

using System.Buffers;
using SparseInference.Serving.Grpc;

namespace SparseInference.Serving.Tests.Grpc;

public sealed class GrpcProtocolTests
{
    private static byte[] Frame(byte flag, params byte[] payload) =>
        [flag, (byte)(payload.Length >> 24), (byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length, .. payload];

    [Fact]
    public void TryReadFrame_CompleteFrame_ReturnsPayloadAndAdvances()
    {
        var buffer = new ReadOnlySequence<byte>([.. Frame(0, 1, 2, 3), .. Frame(0, 9)]);
        Assert.True(GrpcProtocol.TryReadFrame(ref buffer, 100, out var message, out var compressed));
        Assert.False(compressed);
        Assert.Equal([1, 2, 3], message.ToArray());
        Assert.Equal(6, buffer.Length);
        Assert.True(GrpcProtocol.TryReadFrame(ref buffer, 100, out message, out _));
        Assert.Equal([9], message.ToArray());
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void TryReadFrame_EmptyMessage_ReturnsEmptyPayload()
    {
        var buffer = new ReadOnlySequence<byte>(Frame(0));
        Assert.True(GrpcProtocol.TryReadFrame(ref buffer, 100, out var message, out _));
        Assert.True(message.IsEmpty);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    public void TryReadFrame_PartialFrame_ReturnsFalseAndKeepsBuffer(int length)
    {
        var bytes = Frame(0, 1, 2, 3);
        var buffer = new ReadOnlySequence<byte>(bytes[..length]);
        Assert.False(GrpcProtocol.TryReadFrame(ref buffer, 100, out _, out _));
        Assert.Equal(length, buffer.Length);
    }

    [Fact]
    public void TryReadFrame_FrameSplitAcrossSegments_IsReassembled()
    {
        var bytes = Frame(1, 10, 20, 30, 40);
        var first = new Segment(bytes[..3]);
        var last = first.Append(bytes[3..]);
        var buffer = new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
        Assert.True(GrpcProtocol.TryReadFrame(ref buffer, 100, out var message, out var compressed));
        Assert.True(compressed);
        Assert.Equal([10, 20, 30, 40], message.ToArray());
    }

    [Fact]
    public void TryReadFrame_DeclaredLengthOverMax_ThrowsResourceExhaustedBeforeBuffering()
    {
        var header = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 4, 1 });
        var ex = Assert.Throws<GrpcStatusException>(() => GrpcProtocol.TryReadFrame(ref header, 1024, out _, out _));
        Assert.Equal(GrpcStatusCode.ResourceExhausted, ex.Status);
        Assert.Contains("1025", ex.Message);
        Assert.Contains("1024", ex.Message);
    }

    [Fact]
    public void TryReadFrame_FlagAboveOne_ThrowsInternal()
    {
        var buffer = new ReadOnlySequence<byte>(Frame(2, 1));
        var ex = Assert.Throws<GrpcStatusException>(() => GrpcProtocol.TryReadFrame(ref buffer, 100, out _, out _));
        Assert.Equal(GrpcStatusCode.Internal, ex.Status);
    }

    [Fact]
    public void WriteFrameHeader_Length_IsBigEndianWithZeroFlag()
    {
        var header = new byte[5];
        GrpcProtocol.WriteFrameHeader(header, 0x01020304);
        Assert.Equal([0, 1, 2, 3, 4], header);
    }

    [Theory]
    [InlineData("1H", 36_000_000_000L)]
    [InlineData("2M", 1_200_000_000L)]
    [InlineData("3S", 30_000_000L)]
    [InlineData("250m", 2_500_000L)]
    [InlineData("1500u", 15_000L)]
    [InlineData("1000n", 10L)]
    [InlineData("99n", 0L)]
    [InlineData("99999999S", 999_999_990_000_000L)]
    public void TryParseTimeout_EachUnit_ConvertsToTicks(string value, long ticks)
    {
        Assert.True(GrpcProtocol.TryParseTimeout(value, out var timeout));
        Assert.Equal(ticks, timeout.Ticks);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("S")]
    [InlineData("10")]
    [InlineData("10s")]
    [InlineData("-1S")]
    [InlineData("1.5S")]
    [InlineData("123456789S")]
    [InlineData(" 1S")]
    public void TryParseTimeout_Malformed_ReturnsFalse(string? value)
    {
        Assert.False(GrpcProtocol.TryParseTimeout(value, out _));
    }

    [Theory]
    [InlineData("plain text", "plain text")]
    [InlineData("100%", "100%25")]
    [InlineData("température", "temp%C3%A9rature")]
    [InlineData("line\nbreak", "line%0Abreak")]
    public void EncodeMessage_NonPrintable_IsPercentEncodedAndRoundTrips(string message, string encoded)
    {
        Assert.Equal(encoded, GrpcProtocol.EncodeMessage(message));
        Assert.Equal(message, GrpcProtocol.DecodeMessage(encoded));
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes) => Memory = bytes;

        public Segment Append(byte[] bytes)
        {
            var next = new Segment(bytes) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}

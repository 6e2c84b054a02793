using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace SparseInference.Serving.Grpc;

/// <summary>
/// The wire rules of gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): header names, length-prefixed framing,
/// <c>grpc-timeout</c> values and the percent-encoding of <c>grpc-message</c>.
/// </summary>
public static class GrpcProtocol
{
    public const string ContentType = "application/grpc";
    public const string StatusTrailer = "grpc-status";
    public const string MessageTrailer = "grpc-message";
    public const string TimeoutHeader = "grpc-timeout";
    public const string EncodingHeader = "grpc-encoding";
    public const string AcceptEncodingHeader = "grpc-accept-encoding";
    public const string SupportedEncodings = "identity,gzip";

    /// <summary>1-byte compressed flag plus 4-byte big-endian length.</summary>
    public const int FrameHeaderLength = 5;

    /// <summary>
    /// Takes one length-prefixed message off the front of <paramref name="buffer"/>. False when more bytes are needed.
    /// Throws RESOURCE_EXHAUSTED when the declared length is over <paramref name="maxMessageBytes"/>, so an oversized
    /// message is refused before it is buffered.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxMessageBytes, out ReadOnlySequence<byte> message, out bool compressed)
    {
        message = default;
        compressed = false;
        if (buffer.Length < FrameHeaderLength)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[FrameHeaderLength];
        buffer.Slice(0, FrameHeaderLength).CopyTo(header);
        var flag = header[0];
        if (flag > 1)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, $"message frame has compressed flag {flag}, expected 0 or 1.");
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (length > (uint)maxMessageBytes)
        {
            throw new GrpcStatusException(
                GrpcStatusCode.ResourceExhausted,
                $"received message of {length} bytes, larger than the maximum of {maxMessageBytes} bytes.");
        }

        if (buffer.Length < FrameHeaderLength + length)
        {
            return false;
        }

        compressed = flag == 1;
        message = buffer.Slice(FrameHeaderLength, length);
        buffer = buffer.Slice(FrameHeaderLength + length);
        return true;
    }

    /// <summary>Writes the 5-byte prefix of an uncompressed message of <paramref name="length"/> bytes.</summary>
    public static void WriteFrameHeader(Span<byte> destination, int length)
    {
        destination[0] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], (uint)length);
    }

    /// <summary>
    /// Parses <c>grpc-timeout</c>: 1 to 8 ASCII digits and a unit, H (hours), M (minutes), S, m (milli), u (micro), n (nano).
    /// </summary>
    public static bool TryParseTimeout(string? value, out TimeSpan timeout)
    {
        timeout = default;
        if (string.IsNullOrEmpty(value) || value.Length < 2 || value.Length > 9)
        {
            return false;
        }

        var digits = value.AsSpan(0, value.Length - 1);
        foreach (var c in digits)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        var amount = long.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture);
        long? ticks = value[^1] switch
        {
            'H' => amount * TimeSpan.TicksPerHour,
            'M' => amount * TimeSpan.TicksPerMinute,
            'S' => amount * TimeSpan.TicksPerSecond,
            'm' => amount * TimeSpan.TicksPerMillisecond,
            'u' => amount * TimeSpan.TicksPerMicrosecond,
            'n' => amount / TimeSpan.NanosecondsPerTick,
            _ => null,
        };
        if (ticks is null)
        {
            return false;
        }

        timeout = TimeSpan.FromTicks(ticks.Value);
        return true;
    }

    /// <summary>Percent-encodes a status message: bytes outside printable ASCII, and '%', become %XX of their UTF-8.</summary>
    public static string EncodeMessage(string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        var builder = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    /// <summary>Reverses <see cref="EncodeMessage"/>.</summary>
    public static string DecodeMessage(string encoded)
    {
        var bytes = new List<byte>(encoded.Length);
        for (var i = 0; i < encoded.Length; i++)
        {
            if (encoded[i] == '%' && i + 2 < encoded.Length
                && byte.TryParse(encoded.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b))
            {
                bytes.Add(b);
                i += 2;
            }
            else
            {
                bytes.Add((byte)encoded[i]);
            }
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }
}

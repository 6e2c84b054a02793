using System.IO.Compression;
using Grpc.Core;
using Grpc.Net.Compression;

namespace SparseInference.Server.Grpc;

/// <summary>
/// gzip for request messages, refusing a message as soon as it inflates past the receive limit. grpc-dotnet checks the
/// limit against the compressed length only and inflates the whole message into memory, so a small gzip bomb would cost
/// its full inflated size; here inflation stops one read past the limit.
/// </summary>
internal sealed class BoundedGzipCompressionProvider(int maxMessageBytes) : ICompressionProvider
{
    public string EncodingName => "gzip";

    public Stream CreateCompressionStream(Stream stream, CompressionLevel? compressionLevel) =>
        new GZipStream(stream, compressionLevel ?? CompressionLevel.Fastest, leaveOpen: true);

    public Stream CreateDecompressionStream(Stream stream) =>
        new BoundedInflateStream(new GZipStream(stream, CompressionMode.Decompress, leaveOpen: true), maxMessageBytes);

    /// <summary>Reads through a decompressing stream and fails once more than the limit came out of it.</summary>
    private sealed class BoundedInflateStream(Stream inner, int maxBytes) : Stream
    {
        private long _inflated;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int read;
            try
            {
                read = inner.Read(buffer);
            }
            catch (InvalidDataException ex)
            {
                throw new RpcException(new Status(StatusCode.Internal, $"compressed message is not valid gzip: {ex.Message}"));
            }

            _inflated += read;
            if (_inflated > maxBytes)
            {
                throw new RpcException(new Status(
                    StatusCode.ResourceExhausted, $"decompressed message is larger than the maximum of {maxBytes} bytes."));
            }

            return read;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

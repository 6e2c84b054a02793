using System.IO.Compression;
using Grpc.Core;
using Grpc.Net.Compression;

namespace SparseInference.Server.Grpc;

/// <summary>
/// gzip for gRPC messages, as grpc-dotnet's own provider, except that a request whose bytes are not valid gzip ends with
/// INTERNAL ("could not decompress", as gRPC's status table has it) instead of UNKNOWN and a server error in the log.
/// grpc-dotnet still stops reading once a message inflates past the receive limit.
/// </summary>
internal sealed class GzipCompressionProvider : ICompressionProvider
{
    public string EncodingName => "gzip";

    public Stream CreateCompressionStream(Stream stream, CompressionLevel? compressionLevel) =>
        new GZipStream(stream, compressionLevel ?? CompressionLevel.Fastest, leaveOpen: true);

    public Stream CreateDecompressionStream(Stream stream) => new CheckedInflateStream(new GZipStream(stream, CompressionMode.Decompress, leaveOpen: true));

    private sealed class CheckedInflateStream(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            try
            {
                return inner.Read(buffer);
            }
            catch (InvalidDataException ex)
            {
                throw new RpcException(new Status(StatusCode.Internal, $"compressed message is not valid gzip: {ex.Message}"));
            }
        }

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

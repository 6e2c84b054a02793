using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace SparseInference.Models.Formats;

/// <summary>Element types this reader understands: F32/F16/BF16 weights (computed in FP32) and I32 ids or lengths.</summary>
public enum SafetensorsDType
{
    F32,
    F16,
    BF16,
    I32,
}

/// <summary>One tensor's header entry.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, int[] Shape, long Begin, long End)
{
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (int d in Shape)
            {
                n *= d;
            }

            return n;
        }
    }
}

/// <summary>
/// Reads a safetensors file: an 8-byte little-endian header length, a JSON header, then raw little-endian data.
/// Tensors are streamed from the file on demand and converted to FP32. Every error names the file and tensor.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024;
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _entries;

    private SafetensorsFile(string path, Microsoft.Win32.SafeHandles.SafeFileHandle handle, long dataStart, Dictionary<string, SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        _handle = handle;
        _dataStart = dataStart;
        _entries = entries;
        Metadata = metadata;
    }

    public string Path { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public IReadOnlyCollection<SafetensorsEntry> Entries => _entries.Values;

    public static SafetensorsFile Open(string path)
    {
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, $"cannot open the weights file: {e.Message}", e);
        }

        try
        {
            long length = RandomAccess.GetLength(handle);
            if (length < 8)
            {
                throw new ModelFormatException(path, $"truncated: the file has {length} bytes, fewer than the 8-byte header length.");
            }

            Span<byte> prefix = stackalloc byte[8];
            RandomAccess.Read(handle, prefix, 0);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength == 0 || headerLength > MaxHeaderBytes)
            {
                throw new ModelFormatException(path, $"bad header: header length {headerLength} is outside 1 … {MaxHeaderBytes} bytes.");
            }

            if (8 + (long)headerLength > length)
            {
                throw new ModelFormatException(path, $"truncated: the header needs {headerLength} bytes after the length prefix but the file has {length - 8}.");
            }

            var header = new byte[headerLength];
            RandomAccess.Read(handle, header, 8);
            long dataStart = 8 + (long)headerLength;
            var (entries, metadata) = ParseHeader(path, header, length - dataStart);
            return new SafetensorsFile(path, handle, dataStart, entries, metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(path, $"bad header: not valid JSON ({e.Message}).", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(path, $"bad header: expected a JSON object, got {doc.RootElement.ValueKind}.");
            }

            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind == JsonValueKind.Object)
                    {
                        foreach (var m in property.Value.EnumerateObject())
                        {
                            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                        }
                    }

                    continue;
                }

                var entry = ParseEntry(path, property.Name, property.Value);
                if (entry.End > dataLength)
                {
                    throw new ModelFormatException(path, $"truncated: tensor '{entry.Name}' ends at data byte {entry.End} but the data section has {dataLength} bytes.");
                }

                entries[entry.Name] = entry;
            }

            return (entries, metadata);
        }
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement value)
    {
        string Bad(string what) => $"bad header: tensor '{name}': {what}";
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(path, Bad($"expected an object, got {value.ValueKind}."));
        }

        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw new ModelFormatException(path, Bad("missing string field 'dtype'."));
        }

        string dtypeName = dtypeElement.GetString()!;
        SafetensorsDType dtype = dtypeName switch
        {
            "F32" => SafetensorsDType.F32,
            "F16" => SafetensorsDType.F16,
            "BF16" => SafetensorsDType.BF16,
            "I32" => SafetensorsDType.I32,
            _ => throw new ModelFormatException(path, $"tensor '{name}': unsupported dtype '{dtypeName}'; expected one of F32, F16, BF16, I32."),
        };

        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFormatException(path, Bad("missing array field 'shape'."));
        }

        var shape = new int[shapeElement.GetArrayLength()];
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int dim) || dim < 0)
            {
                throw new ModelFormatException(path, Bad($"shape entry {i} is {d.GetRawText()}, expected a non-negative integer."));
            }

            shape[i++] = dim;
        }

        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end) || begin < 0 || end < begin)
        {
            throw new ModelFormatException(path, Bad("'data_offsets' must be [begin, end] with 0 ≤ begin ≤ end."));
        }

        var entry = new SafetensorsEntry(name, dtype, shape, begin, end);
        long expectedBytes = entry.ElementCount * ElementSize(dtype);
        if (end - begin != expectedBytes)
        {
            throw new ModelFormatException(path, Bad($"data_offsets span {end - begin} bytes but shape [{string.Join(", ", shape)}] of {dtypeName} needs {expectedBytes}."));
        }

        return entry;
    }

    public static int ElementSize(SafetensorsDType dtype) => dtype is SafetensorsDType.F32 or SafetensorsDType.I32 ? 4 : 2;

    public bool Contains(string name) => _entries.ContainsKey(name);

    public SafetensorsEntry GetEntry(string name)
        => _entries.TryGetValue(name, out var entry)
            ? entry
            : throw new ModelFormatException(Path, $"missing tensor '{name}'.");

    /// <summary>Reads tensor <paramref name="name"/> as FP32, checking its shape against <paramref name="expectedShape"/>.</summary>
    public float[] ReadFloat32(string name, params int[] expectedShape)
    {
        var entry = GetEntry(name);
        if (!entry.Shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new ModelFormatException(Path, $"tensor '{name}': shape [{string.Join(", ", entry.Shape)}], expected [{string.Join(", ", expectedShape)}] from config.json.");
        }

        if (entry.DType == SafetensorsDType.I32)
        {
            throw new ModelFormatException(Path, $"tensor '{name}': dtype I32, expected a floating-point dtype (F32, F16 or BF16).");
        }

        var result = new float[entry.ElementCount];
        long bytes = entry.End - entry.Begin;
        if (entry.DType == SafetensorsDType.F32)
        {
            var target = MemoryMarshal.AsBytes(result.AsSpan());
            ReadExactly(entry, target);
            if (!BitConverter.IsLittleEndian)
            {
                var ints = MemoryMarshal.Cast<float, int>(result.AsSpan());
                BinaryPrimitives.ReverseEndianness(ints, ints);
            }

            return result;
        }

        var raw = new byte[bytes];
        ReadExactly(entry, raw);
        for (int i = 0; i < result.Length; i++)
        {
            ushort bits = BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(2 * i));
            result[i] = entry.DType == SafetensorsDType.F16
                ? (float)BitConverter.UInt16BitsToHalf(bits)
                : BitConverter.Int32BitsToSingle(bits << 16);
        }

        return result;
    }

    /// <summary>Reads an I32 tensor (token ids, lengths).</summary>
    public int[] ReadInt32(string name)
    {
        var entry = GetEntry(name);
        if (entry.DType != SafetensorsDType.I32)
        {
            throw new ModelFormatException(Path, $"tensor '{name}': dtype {entry.DType}, expected I32.");
        }

        var result = new int[entry.ElementCount];
        ReadExactly(entry, MemoryMarshal.AsBytes(result.AsSpan()));
        if (!BitConverter.IsLittleEndian)
        {
            BinaryPrimitives.ReverseEndianness(result, result);
        }

        return result;
    }

    private void ReadExactly(SafetensorsEntry entry, Span<byte> target)
    {
        long offset = _dataStart + entry.Begin;
        int total = 0;
        while (total < target.Length)
        {
            int read = RandomAccess.Read(_handle, target[total..], offset + total);
            if (read <= 0)
            {
                throw new ModelFormatException(Path, $"truncated: tensor '{entry.Name}' has {total} of {target.Length} bytes.");
            }

            total += read;
        }
    }

    public void Dispose() => _handle.Dispose();

    /// <summary>Writes FP32 tensors as a safetensors file (used to produce models and test files).</summary>
    public static void WriteFloat32(string path, IEnumerable<(string Name, int[] Shape, float[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        using var headerStream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(headerStream))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata)
                {
                    writer.WriteString(k, v);
                }

                writer.WriteEndObject();
            }

            long offset = 0;
            foreach (var (name, shape, data) in list)
            {
                writer.WriteStartObject(name);
                writer.WriteString("dtype", "F32");
                writer.WriteStartArray("shape");
                foreach (int d in shape)
                {
                    writer.WriteNumberValue(d);
                }

                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                offset += 4L * data.Length;
                writer.WriteNumberValue(offset);
                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        // Pad the header with spaces to 8-byte alignment, as the reference writer does.
        var header = headerStream.ToArray().ToList();
        while (header.Count % 8 != 0)
        {
            header.Add((byte)' ');
        }

        using var file = File.Create(path);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Count);
        file.Write(prefix);
        file.Write(header.ToArray());
        foreach (var (_, _, data) in list)
        {
            var bytes = MemoryMarshal.AsBytes(data.AsSpan());
            if (BitConverter.IsLittleEndian)
            {
                file.Write(bytes);
            }
            else
            {
                var copy = data.ToArray();
                var ints = MemoryMarshal.Cast<float, int>(copy.AsSpan());
                BinaryPrimitives.ReverseEndianness(ints, ints);
                file.Write(MemoryMarshal.AsBytes(copy.AsSpan()));
            }
        }
    }

}

using System.Text;

namespace SparseInference.Server.Tests.Reliability;

/// <summary>
/// Seeded byte-level mutations for protocol fuzzing: bit flips, boundary bytes, deletions, duplications, splices of
/// tokens that stress JSON and protobuf readers, and truncation. The same seed yields the same bytes.
/// </summary>
internal static class FuzzMutator
{
    private static readonly byte[][] Tokens =
    [
        .. new[]
        {
            "1e309", "-1", "0", "18446744073709551616", "9223372036854775807", "-9223372036854775808", "NaN", "Infinity", "null", "true",
            "\"\"", "\"\\u0000\"", "\"\\ud800\"", "[[[[[[[[[[[[[[[[", "]]]]", "{}", "[]", "{\"a\":", ",", ":", "\"FP32\"", "\"INT64\"", "\"BYTES\"",
            "\"shape\":[4294967296,4294967296]", "\"binary_data_size\":-1", "\"binary_data_size\":1099511627776", "\"data\":[1e38,1e38]",
            "\"parameters\":{\"binary_data\":true}", "\"inputs\":[]", "\"outputs\":[{\"name\":\"nope\"}]", "\"id\":7",
        }.Select(Encoding.UTF8.GetBytes),
        [0xFF, 0xFF, 0xFF, 0xFF, 0x0F], [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x07], [0x00], [0xC3, 0x28],
    ];

    private static readonly byte[] Interesting = [0x00, 0x01, 0x7F, 0x80, 0xFF, (byte)'"', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'-', (byte)'9', (byte)'e', (byte)'\\'];

    public static byte[] Mutate(byte[] seed, Random random)
    {
        var data = new List<byte>(seed);
        var operations = 1 + random.Next(4);
        for (var op = 0; op < operations; op++)
        {
            var at = data.Count == 0 ? 0 : random.Next(data.Count);
            switch (random.Next(7))
            {
                case 0 when data.Count > 0:
                    data[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when data.Count > 0:
                    data[at] = Interesting[random.Next(Interesting.Length)];
                    break;
                case 2 when data.Count > 0:
                    data.RemoveRange(at, Math.Min(data.Count - at, 1 + random.Next(16)));
                    break;
                case 3 when data.Count > 0:
                    var length = Math.Min(data.Count - at, 1 + random.Next(32));
                    data.InsertRange(random.Next(data.Count), data.GetRange(at, length));
                    break;
                case 4:
                    data.InsertRange(at, Tokens[random.Next(Tokens.Length)]);
                    break;
                case 5 when data.Count > 0:
                    data.RemoveRange(at, data.Count - at);
                    break;
                default:
                    var noise = new byte[1 + random.Next(8)];
                    random.NextBytes(noise);
                    data.InsertRange(at, noise);
                    break;
            }
        }

        return [.. data];
    }
}

using System.Text;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.State;

/// <summary>
/// Names one shared document: a model, a kind of document (<c>rollout</c>, <c>baselines</c>) and, for kinds
/// with many documents per model, a key (a line id). In a directory store that is
/// <c>&lt;root&gt;/&lt;model&gt;/&lt;kind&gt;.json</c> or <c>&lt;root&gt;/&lt;model&gt;/&lt;kind&gt;/&lt;key&gt;.json</c>.
/// </summary>
public readonly record struct StateDocumentId
{
    public const int MaxKindLength = 64;

    /// <summary>Keys are file names once encoded; 200 bytes leaves room for the extension within any file system's 255.</summary>
    public const int MaxEncodedKeyLength = 200;

    public StateDocumentId(string model, string kind, string? key = null)
    {
        if (!ModelNames.TryValidate(model, "model", out var error))
        {
            throw new ArgumentException($"state document: {error}", nameof(model));
        }

        if (!IsValidKind(kind))
        {
            throw new ArgumentException($"state document: kind: expected 1-{MaxKindLength} characters of [a-z0-9-], actual '{kind}'", nameof(kind));
        }

        if (key is not null)
        {
            if (key.Length == 0)
            {
                throw new ArgumentException("state document: key: expected a non-empty string or none, actual an empty string", nameof(key));
            }

            if (EncodeKey(key).Length > MaxEncodedKeyLength)
            {
                throw new ArgumentException($"state document: key: expected at most {MaxEncodedKeyLength} bytes once encoded as a file name, actual {EncodeKey(key).Length} for '{key}'", nameof(key));
            }
        }

        Model = model;
        Kind = kind;
        Key = key;
    }

    public string Model { get; }

    public string Kind { get; }

    /// <summary>Null for a kind with one document per model.</summary>
    public string? Key { get; }

    public override string ToString() => Key is null ? $"{Model}/{Kind}" : $"{Model}/{Kind}/{Key}";

    public static bool IsValidKind(string? kind) =>
        !string.IsNullOrEmpty(kind) && kind.Length <= MaxKindLength && kind.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-');

    /// <summary>
    /// A key as one safe path segment: letters, digits, '_' and '-' as they are, '.' except in first place,
    /// every other UTF-8 byte as %XX. Reversible, so a listing gives the keys back.
    /// </summary>
    public static string EncodeKey(string key)
    {
        var encoded = new StringBuilder(key.Length);
        var bytes = Encoding.UTF8.GetBytes(key);
        for (var i = 0; i < bytes.Length; i++)
        {
            var b = bytes[i];
            var plain = b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9') or (byte)'_' or (byte)'-'
                || (b == (byte)'.' && i > 0);
            if (plain)
            {
                encoded.Append((char)b);
            }
            else
            {
                encoded.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return encoded.ToString();
    }

    /// <summary>The inverse of <see cref="EncodeKey"/>; null when <paramref name="encoded"/> is not an encoded key.</summary>
    public static string? DecodeKey(string encoded)
    {
        var bytes = new List<byte>(encoded.Length);
        for (var i = 0; i < encoded.Length; i++)
        {
            if (encoded[i] != '%')
            {
                bytes.Add((byte)encoded[i]);
                continue;
            }

            if (i + 2 >= encoded.Length || !byte.TryParse(encoded.AsSpan(i + 1, 2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var b))
            {
                return null;
            }

            bytes.Add(b);
            i += 2;
        }

        var key = Encoding.UTF8.GetString([.. bytes]);
        return key.Length > 0 && EncodeKey(key) == encoded ? key : null;
    }
}

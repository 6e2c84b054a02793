using System.Diagnostics.CodeAnalysis;

namespace SparseInference.Serving.Repository;

/// <summary>
/// Model and version names become directory names, so they are confined to one path segment of a safe
/// alphabet: no separators, no <c>..</c>, nothing rooted.
/// </summary>
public static class ModelNames
{
    public const int MaxLength = 128;

    public static bool TryValidate(string? name, string what, [NotNullWhen(false)] out string? error)
    {
        if (string.IsNullOrEmpty(name))
        {
            error = $"{what} must not be empty.";
            return false;
        }

        if (name.Length > MaxLength)
        {
            error = $"{what} must be at most {MaxLength} characters, got {name.Length}.";
            return false;
        }

        if (name[0] == '.')
        {
            error = $"{what} must not start with '.', got '{name}'.";
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
            {
                error = $"{what} may hold only letters, digits, '_', '-' and '.', got '{name}'.";
                return false;
            }
        }

        error = null;
        return true;
    }

    /// <summary>Joins a validated segment under <paramref name="root"/> and proves the result stays inside it.</summary>
    public static string CombineConfined(string root, string segment)
    {
        var fullRoot = Path.GetFullPath(root);
        var combined = Path.GetFullPath(Path.Combine(fullRoot, segment));
        var rootWithSeparator = fullRoot.EndsWith(Path.DirectorySeparatorChar) ? fullRoot : fullRoot + Path.DirectorySeparatorChar;
        if (!combined.StartsWith(rootWithSeparator, StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{segment}' resolves outside the repository root '{fullRoot}'.", nameof(segment));
        }

        return combined;
    }
}

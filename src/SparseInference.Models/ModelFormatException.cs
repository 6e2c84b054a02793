namespace SparseInference.Models;

/// <summary>A model file that does not follow docs/model-format.md; the message names the file and what is wrong.</summary>
public sealed class ModelFormatException : Exception
{
    public ModelFormatException(string file, string problem, Exception? inner = null)
        : base($"{file}: {problem}", inner)
    {
        File = file;
    }

    /// <summary>The offending file.</summary>
    public string File { get; }
}

using System.Text;
using SparseInference.Models.Formats;

namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>Copies golden model directories into scratch folders and rewrites their files for negative tests.</summary>
internal static class TestModels
{
    public const string Sinusoidal = "tiny-continuous-sinusoidal";
    public const string Tokens = "tiny-tokens-classifier";

    public static string GoldenModel(string name) => Path.Combine(RepositoryPaths.GoldenFixtures, "models", name);

    public static void CopyModel(string name, string target)
    {
        foreach (var file in Directory.GetFiles(GoldenModel(name)))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }
    }

    /// <summary>All tensors of a golden model as FP32, in file order.</summary>
    public static List<(string Name, int[] Shape, float[] Data)> ReadTensors(string name)
    {
        using var file = SafetensorsFile.Open(Path.Combine(GoldenModel(name), EncoderModel.WeightsFileName));
        return file.Entries.OrderBy(e => e.Begin).Select(e => (e.Name, e.Shape, file.ReadFloat32(e.Name, e.Shape))).ToList();
    }

    public static void EditConfig(string directory, string from, string to)
    {
        string path = Path.Combine(directory, EncoderModel.ConfigFileName);
        string text = File.ReadAllText(path);
        if (!text.Contains(from, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"'{from}' not in {path}.");
        }

        File.WriteAllText(path, text.Replace(from, to, StringComparison.Ordinal), Encoding.UTF8);
    }
}

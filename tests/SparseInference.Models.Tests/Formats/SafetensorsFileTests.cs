using System.Buffers.Binary;
using System.Text;
using SparseInference.Models.Formats;
using SparseInference.Models.Tests.Infrastructure;

namespace SparseInference.Models.Tests.Formats;

public sealed class SafetensorsFileTests
{
    [Fact]
    public void ReadFloat32_RoundTripOfWrittenFile_ReturnsSameValues()
    {
        using var dir = new TempDirectory();
        string path = dir.File("t.safetensors");
        SafetensorsFile.WriteFloat32(path, [("a", [2, 3], [1f, 2f, 3f, 4f, 5f, -6.5f]), ("b", [1], [42f])]);

        using var file = SafetensorsFile.Open(path);

        Assert.Equal([1f, 2f, 3f, 4f, 5f, -6.5f], file.ReadFloat32("a", 2, 3));
        Assert.Equal([42f], file.ReadFloat32("b", 1));
    }

    [Fact]
    public void ReadFloat32_HalfPrecisionWeights_ConvertToFloat32()
    {
        // F16 and BF16 golden models load and carry the same tensors as their F32 siblings.
        using var f16 = SafetensorsFile.Open(Path.Combine(TestModels.GoldenModel("tiny-continuous-f16"), EncoderModel.WeightsFileName));
        using var bf16 = SafetensorsFile.Open(Path.Combine(TestModels.GoldenModel("tiny-continuous-bf16"), EncoderModel.WeightsFileName));

        var a = f16.ReadFloat32("final_ln.weight", 16);
        var b = bf16.ReadFloat32("final_ln.weight", 16);

        Assert.Equal(SafetensorsDType.F16, f16.GetEntry("final_ln.weight").DType);
        Assert.Equal(SafetensorsDType.BF16, bf16.GetEntry("final_ln.weight").DType);
        Assert.All(a, v => Assert.InRange(v, 0.5f, 1.5f));
        Assert.All(b, v => Assert.InRange(v, 0.5f, 1.5f));
    }

    [Fact]
    public void Load_TruncatedWeights_ErrorNamesFileAndTensor()
    {
        using var dir = new TempDirectory();
        TestModels.CopyModel(TestModels.Sinusoidal, dir.Path);
        string weights = Path.Combine(dir.Path, EncoderModel.WeightsFileName);
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..^40]);
        string lastTensor;
        using (var original = SafetensorsFile.Open(Path.Combine(TestModels.GoldenModel(TestModels.Sinusoidal), EncoderModel.WeightsFileName)))
        {
            lastTensor = original.Entries.MaxBy(e => e.End)!.Name;
        }

        var error = Assert.Throws<ModelFormatException>(() => EncoderModel.Load(dir.Path));

        Assert.Equal(weights, error.File);
        Assert.Contains(weights, error.Message);
        Assert.Contains($"'{lastTensor}'", error.Message);
        Assert.Contains("truncated", error.Message);
    }

    [Fact]
    public void Open_FileShorterThanHeader_ErrorNamesFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("short.safetensors");
        var bytes = new byte[8 + 10];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 500);
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));

        Assert.Contains(path, error.Message);
        Assert.Contains("truncated", error.Message);
    }

    [Fact]
    public void Open_HeaderNotJson_ErrorSaysBadHeader()
    {
        using var dir = new TempDirectory();
        string path = dir.File("bad.safetensors");
        var header = Encoding.UTF8.GetBytes("{\"a\": [1, 2");
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));

        Assert.Contains(path, error.Message);
        Assert.Contains("bad header", error.Message);
    }

    [Fact]
    public void Load_WrongShape_ErrorNamesFileTensorAndBothShapes()
    {
        using var dir = new TempDirectory();
        TestModels.CopyModel(TestModels.Sinusoidal, dir.Path);
        var tensors = TestModels.ReadTensors(TestModels.Sinusoidal)
            .Select(t => t.Name == "layers.1.ff1.weight" ? (t.Name, new[] { 16, 32 }, t.Data) : t).ToList();
        string weights = Path.Combine(dir.Path, EncoderModel.WeightsFileName);
        SafetensorsFile.WriteFloat32(weights, tensors);

        var error = Assert.Throws<ModelFormatException>(() => EncoderModel.Load(dir.Path));

        Assert.Equal(weights, error.File);
        Assert.Contains("'layers.1.ff1.weight'", error.Message);
        Assert.Contains("[16, 32]", error.Message);
        Assert.Contains("expected [32, 16]", error.Message);
    }

    [Fact]
    public void Load_MissingTensor_ErrorNamesFileAndTensor()
    {
        using var dir = new TempDirectory();
        TestModels.CopyModel(TestModels.Sinusoidal, dir.Path);
        var tensors = TestModels.ReadTensors(TestModels.Sinusoidal).Where(t => t.Name != "layers.1.attn.out.bias").ToList();
        string weights = Path.Combine(dir.Path, EncoderModel.WeightsFileName);
        SafetensorsFile.WriteFloat32(weights, tensors);

        var error = Assert.Throws<ModelFormatException>(() => EncoderModel.Load(dir.Path));

        Assert.Equal(weights, error.File);
        Assert.Contains("missing tensor 'layers.1.attn.out.bias'", error.Message);
    }

    [Fact]
    public void Load_UnknownDType_ErrorNamesFileTensorAndKnownDTypes()
    {
        using var dir = new TempDirectory();
        string path = dir.File("weights.safetensors");
        SafetensorsFile.WriteFloat32(path, [("x.weight", [2], [1f, 2f])]);
        var bytes = File.ReadAllBytes(path);
        var text = Encoding.Latin1.GetString(bytes).Replace("\"F32\"", "\"F64\"", StringComparison.Ordinal);
        File.WriteAllBytes(path, Encoding.Latin1.GetBytes(text));

        var error = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));

        Assert.Contains(path, error.Message);
        Assert.Contains("'x.weight'", error.Message);
        Assert.Contains("'F64'", error.Message);
        Assert.Contains("F32, F16, BF16", error.Message);
    }

    [Fact]
    public void Open_OffsetsDisagreeWithShape_ErrorNamesTensor()
    {
        using var dir = new TempDirectory();
        string path = dir.File("weights.safetensors");
        SafetensorsFile.WriteFloat32(path, [("x.weight", [2], [1f, 2f]), ("y.bias", [1], [3f])]);
        var text = Encoding.Latin1.GetString(File.ReadAllBytes(path)).Replace("\"shape\":[2]", "\"shape\":[3]", StringComparison.Ordinal);
        File.WriteAllBytes(path, Encoding.Latin1.GetBytes(text));

        var error = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));

        Assert.Contains("'x.weight'", error.Message);
        Assert.Contains("needs 12", error.Message);
    }
}

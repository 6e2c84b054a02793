using System.Globalization;

namespace SparseInference.Tensors;

/// <summary>
/// A compute device as configuration names it: <c>cpu</c>, <c>cuda</c> (GPU 0) or <c>cuda:N</c>. The configured string is
/// parsed here and nowhere else; <see cref="ToString"/> is the canonical name (<c>cuda</c> becomes <c>cuda:0</c>).
/// </summary>
public readonly record struct ComputeDevice(DeviceKind Kind, int Ordinal)
{
    public const string CpuName = "cpu";
    public const string CudaName = "cuda";

    /// <summary>What a configured device string may be, for error messages.</summary>
    public const string Expected = "'cpu', 'cuda' or 'cuda:N'";

    /// <summary>The CPU backend, the default.</summary>
    public static ComputeDevice Cpu => new(DeviceKind.Cpu, 0);

    /// <summary>Reads <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> (N a non-negative integer), exactly as written.</summary>
    public static bool TryParse(string? text, out ComputeDevice device)
    {
        device = Cpu;
        if (text == CpuName)
        {
            return true;
        }

        if (text == CudaName)
        {
            device = new ComputeDevice(DeviceKind.Cuda, 0);
            return true;
        }

        if (text is not null
            && text.StartsWith(CudaName + ":", StringComparison.Ordinal)
            && int.TryParse(text.AsSpan(CudaName.Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal))
        {
            device = new ComputeDevice(DeviceKind.Cuda, ordinal);
            return true;
        }

        return false;
    }

    /// <summary>As <see cref="TryParse"/>; a <see cref="FormatException"/> naming the expected forms and the value otherwise.</summary>
    public static ComputeDevice Parse(string? text) =>
        TryParse(text, out var device) ? device : throw new FormatException($"compute device: expected {Expected}, actual '{text}'");

    public override string ToString() => Kind == DeviceKind.Cpu ? CpuName : $"{CudaName}:{Ordinal}";
}

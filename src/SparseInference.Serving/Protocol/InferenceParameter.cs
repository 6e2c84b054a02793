using System.Globalization;

namespace SparseInference.Serving.Protocol;

/// <summary>A request or response parameter: one of bool, integer, double or string.</summary>
public readonly record struct InferenceParameter
{
    private InferenceParameter(object value) => Value = value;

    public object Value { get; }

    public static InferenceParameter Of(string value) => new(value);
    public static InferenceParameter Of(bool value) => new(value);
    public static InferenceParameter Of(long value) => new(value);
    public static InferenceParameter Of(double value) => new(value);

    public override string ToString() => Value switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        _ => "",
    };

    public string KindName => Value switch
    {
        string => "string",
        bool => "bool",
        long => "int64",
        double => "double",
        _ => "none",
    };
}

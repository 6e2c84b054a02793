using System.Text.Json.Serialization;

namespace SparseInference.Serving.Baselines;

/// <summary>The JSON form of a line baseline and of the onboarding rows kept beside it (snake_case names, as the model files use), source-generated.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = false,
    NumberHandling = JsonNumberHandling.Strict,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(LineBaseline))]
[JsonSerializable(typeof(OnboardingRowsDocument))]
internal sealed partial class BaselineJsonContext : JsonSerializerContext;

/// <summary>
/// Onboarding bodies: snake_case, and the strings "NaN" and "Infinity" read as numbers so that the calibrator can name the
/// row and channel that holds one (plain JSON has no literal for them).
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(OnboardingRowsBody))]
internal sealed partial class OnboardingJsonContext : JsonSerializerContext;

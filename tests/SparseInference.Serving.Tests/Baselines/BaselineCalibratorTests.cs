using SparseInference.Serving.Baselines;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.Baselines;

public sealed class BaselineCalibratorTests(ShippedSkabModel skab) : IClassFixture<ShippedSkabModel>
{
    private readonly ManualTimeProvider _time = new();

    private CalibrationTarget Target => CalibrationTarget.For(skab.ModelVersion);

    [SkippableFact]
    public void Calibrate_SkabOnboardingStretch_MatchesOfflineComputation()
    {
        var baseline = skab.Baseline;

        var fixture = skab.Fixture;
        Assert.Equal("pump-1", baseline.Line);
        Assert.Equal(ShippedSkabModel.ModelName, baseline.Model);
        Assert.Equal(skab.Version, baseline.ModelVersion);
        Assert.Equal(skab.OnboardingRows, baseline.Rows);
        Assert.Equal(ShippedSkabModel.CalibratedAt, baseline.CreatedAt);
        Assert.Equal(0, baseline.Revision);
        AssertClose(ShippedSkabModel.Doubles(fixture["input_mean"]), baseline.InputMean, 1e-12);
        AssertClose(ShippedSkabModel.Doubles(fixture["input_std"]), baseline.InputStd, 1e-12);

        var expectedVariants = fixture["variants"]!.AsObject();
        Assert.Equal(expectedVariants.Select(v => v.Key).Order(StringComparer.Ordinal), baseline.Variants.Keys);
        foreach (var (name, expected) in expectedVariants)
        {
            var actual = baseline.Variants[name];
            Assert.Equal((string)expected!["pattern"]!, actual.Pattern);
            // FP32 engine against FP32 PyTorch: residuals agree to about 1e-6 of the input scale
            AssertClose(ShippedSkabModel.Doubles(expected["residual_mean"]), actual.ResidualMean, 1e-4);
            AssertClose(ShippedSkabModel.Doubles(expected["residual_std"]), actual.ResidualStd, 1e-4);
            AssertClose([(double)expected["onboarding_quantile"]!, (double)expected["threshold"]!], [actual.OnboardingQuantile, actual.Threshold], 1e-4);
        }
    }

    [SkippableFact]
    public void Calibrate_TooFewRows_IsRefusedNamingTheMinimum()
    {
        var rule = Target.Rule;
        var rows = skab.Onboarding.Take(rule.MinimumRows - 1).ToList();

        var ex = Assert.Throws<OnboardingException>(() => new BaselineCalibrator(_time).Calibrate("pump-1", Target, rows));

        Assert.Equal($"onboarding data: {rule.MinimumRows - 1} rows, expected at least {rule.MinimumRows} (the model scores windows of {rule.Window} rows; its rule was validated with {rule.ValidatedRows}).", ex.Message);
    }

    [SkippableFact]
    public void Calibrate_ConstantChannel_IsRefusedNamingTheChannel()
    {
        var rows = Copy(skab.Onboarding);
        foreach (var row in rows)
            row[7] = 32.0;

        var ex = Assert.Throws<OnboardingException>(() => new BaselineCalibrator(_time).Calibrate("pump-1", Target, rows));

        Assert.StartsWith("onboarding data: channel 7 ('Volume Flow RateRMS') is constant (32 in all 400 rows)", ex.Message);
    }

    [SkippableTheory]
    [InlineData(double.NaN, "NaN")]
    [InlineData(double.PositiveInfinity, "Infinity")]
    [InlineData(double.NegativeInfinity, "-Infinity")]
    public void Calibrate_NonFiniteValue_IsRefusedNamingRowAndChannel(double value, string shown)
    {
        var rows = Copy(skab.Onboarding);
        rows[123][3] = value;

        var ex = Assert.Throws<OnboardingException>(() => new BaselineCalibrator(_time).Calibrate("pump-1", Target, rows));

        Assert.Equal($"onboarding data: row 123 channel 3 ('Pressure') is {shown}; every value must be a finite number.", ex.Message);
    }

    [SkippableTheory]
    [InlineData(7)]
    [InlineData(9)]
    public void Calibrate_WrongChannelCount_IsRefusedWithExpectedAndActual(int count)
    {
        var rows = Copy(skab.Onboarding);
        rows[5] = rows[5].Take(count).Concat(Enumerable.Repeat(1.0, Math.Max(0, count - 8))).ToArray();

        var ex = Assert.Throws<OnboardingException>(() => new BaselineCalibrator(_time).Calibrate("pump-1", Target, rows));

        Assert.StartsWith($"onboarding data: row 5 has {count} values, expected 8 (one per channel: Accelerometer1RMS, Accelerometer2RMS, ", ex.Message);
    }

    [SkippableTheory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("pump\n1")]
    public void Calibrate_UnusableLineKey_IsRefused(string line)
    {
        var ex = Assert.Throws<OnboardingException>(() => new BaselineCalibrator(_time).Calibrate(line, Target, skab.Onboarding));

        Assert.StartsWith("line must ", ex.Message);
    }

    [SkippableFact]
    public void Quantile_MatchesNumpyLinearInterpolation()
    {
        // numpy.quantile([3, 1, 4, 1, 5], q) for q = 0, 0.3, 0.99, 1: 1, 1.4, 4.96, 5
        double[] values = [3, 1, 4, 1, 5];
        Assert.Equal(1.0, BaselineCalibrator.Quantile(values, 0.0), 12);
        Assert.Equal(1.4, BaselineCalibrator.Quantile(values, 0.3), 12);
        Assert.Equal(4.96, BaselineCalibrator.Quantile(values, 0.99), 12);
        Assert.Equal(5.0, BaselineCalibrator.Quantile(values, 1.0), 12);
    }

    private static List<double[]> Copy(IReadOnlyList<double[]> rows) => [.. rows.Select(r => (double[])r.Clone())];

    internal static void AssertClose(IReadOnlyList<double> expected, IReadOnlyList<double> actual, double tolerance)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var scale = Math.Max(1.0, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * scale, $"[{i}]: expected {expected[i]:R}, actual {actual[i]:R} (tolerance {tolerance} relative)");
        }
    }
}

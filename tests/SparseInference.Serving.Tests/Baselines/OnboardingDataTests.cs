using System.Text;
using SparseInference.Serving.Baselines;

namespace SparseInference.Serving.Tests.Baselines;

public sealed class OnboardingDataTests
{
    private static readonly string[] Channels = ["Current", "Pressure", "Temperature"];

    [Theory]
    [InlineData(';')]
    [InlineData(',')]
    [InlineData('\t')]
    public void ReadCsv_HeaderNamesTheChannels_ColumnsPickedByNameInModelOrder_SeparatorDetected(char separator)
    {
        var csv = string.Join('\n',
            string.Join(separator, "datetime", "Temperature", "Current", "anomaly", "Pressure"),
            string.Join(separator, "2020-03-09 10:14:33", "79.3366", "1.3302", "0", "0.054711"),
            string.Join(separator, "2020-03-09 10:14:34", "79.5158", "-1.5e-3", "1", "0.382638"),
            "");

        var rows = OnboardingData.ReadCsv(new StringReader(csv), Channels, maxRows: 10);

        Assert.Equal([[1.3302, 0.054711, 79.3366], [-0.0015, 0.382638, 79.5158]], rows);
    }

    [Fact]
    public void ReadCsv_QuotedHeaderAndCellsWithSpaces_ReadAsTheirValues()
    {
        var csv = "\"Temperature\" ; \"Pressure\" ; \"Current\" ; \"note\"\n 79.3 ; 0.05 ; 1.33 ; \"a; b\"\n";

        var rows = OnboardingData.ReadCsv(new StringReader(csv), Channels, maxRows: 10);

        Assert.Equal([[1.33, 0.05, 79.3]], rows);
    }

    [Fact]
    public void ReadCsv_NaNText_ReadAsNaN_ForTheCalibratorToNameRowAndChannel()
    {
        var rows = OnboardingData.ReadCsv(new StringReader("Current;Pressure;Temperature\n1;NaN;3\n"), Channels, maxRows: 10);

        Assert.True(double.IsNaN(rows[0][1]));
    }

    [Theory]
    [InlineData("Current;Temperature\n1;2\n", "onboarding data: the CSV header lacks channel [Pressure]; expected columns [Current, Pressure, Temperature] (others are ignored), got [Current, Temperature].")]
    [InlineData("Current;Pressure;Temperature\n1;2;3\n1;x;3\n", "onboarding data: CSV line 3 column 'Pressure': expected a number, got 'x'.")]
    [InlineData("Current;Pressure;Temperature\n1;2\n", "onboarding data: CSV line 2 has 2 fields, expected 3 as the header.")]
    [InlineData("", "onboarding data: the CSV is empty; expected a header row naming the channels [Current, Pressure, Temperature], then one row per reading.")]
    [InlineData("Current;Pressure;Temperature\n1;2;3\n4;5;6\n7;8;9\n", "onboarding data: more than 2 rows; send at most 2 (the rule was validated on a few hundred rows of normal operation).")]
    public void ReadCsv_Problem_RefusedNamingLineColumnAndValue(string csv, string message)
    {
        var ex = Assert.Throws<OnboardingException>(() => OnboardingData.ReadCsv(new StringReader(csv), Channels, maxRows: 2));

        Assert.Equal(message, ex.Message);
    }

    [Fact]
    public void ReadCsv_ModelWithoutChannelNames_RefusedAskingForJsonRows()
    {
        var ex = Assert.Throws<OnboardingException>(() => OnboardingData.ReadCsv(new StringReader("a;b\n1;2\n"), [], maxRows: 10));

        Assert.Equal("onboarding data: the model names no channels (metadata.features), so CSV columns cannot be matched; send JSON rows in the model's channel order.", ex.Message);
    }

    [Fact]
    public void ReadJson_Rows_WithNamedNonFiniteStrings_AndOptionalChannelsChecked()
    {
        var rows = OnboardingData.ReadJson(Encoding.UTF8.GetBytes("""{"rows": [[1, 2, 3], [4, "NaN", "-Infinity"]], "channels": ["Current", "Pressure", "Temperature"]}"""), Channels, maxRows: 10);

        Assert.Equal(4, rows[1][0]);
        Assert.True(double.IsNaN(rows[1][1]));
        Assert.Equal(double.NegativeInfinity, rows[1][2]);
    }

    [Theory]
    [InlineData("""{"rows": [[1, 2, 3]], "channels": ["Pressure", "Current", "Temperature"]}""", "onboarding data: channels must be the model's, in its order: [Current, Pressure, Temperature], got [Pressure, Current, Temperature].")]
    [InlineData("""{"rows": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}""", "onboarding data: more than 2 rows; send at most 2 (the rule was validated on a few hundred rows of normal operation).")]
    [InlineData("""[[1, 2, 3]]""", "onboarding data: expected {\"rows\": [[number, …], …]} with one array per reading holding 3 numbers (Current, Pressure, Temperature), got invalid JSON: ")]
    [InlineData("""{"rows": [[1, true, 3]]}""", "onboarding data: expected {\"rows\": [[number, …], …]} with one array per reading holding 3 numbers (Current, Pressure, Temperature), got invalid JSON: ")]
    public void ReadJson_Problem_Refused(string json, string message)
    {
        var ex = Assert.Throws<OnboardingException>(() => OnboardingData.ReadJson(Encoding.UTF8.GetBytes(json), Channels, maxRows: 2));

        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }
}

using SparseInference.Testing;
namespace SparseInference.LoadGen.Tests;

public sealed class SensorCsvTests
{
    private const string Header = "datetime;s1;s2;anomaly;changepoint";

    private static SensorLine Read(string text, int channels = 2) => SensorCsv.ReadLine("test", new StringReader(text), channels);

    [Fact]
    public void ReadLine_SkabLayout_KeepsSensorColumnsInOrder()
    {
        var line = Read($"{Header}\n2020-01-01 00:00:00;1.5;2;0;0\n2020-01-01 00:00:01;3;4.25;1;0\n");

        Assert.Equal(2, line.Rows);
        Assert.Equal([1.5f, 2f, 3f, 4.25f], line.Values);
    }

    [Fact]
    public void ReadLine_WrongSensorCount_NamesExpectedAndActual()
    {
        var ex = Assert.Throws<InvalidDataException>(() => Read($"{Header}\n", channels: 8));
        Assert.Contains("expected 8 sensor columns", ex.Message);
        Assert.Contains("has 2 (s1, s2)", ex.Message);
    }

    [Fact]
    public void ReadLine_NonNumericCell_NamesRowAndColumn()
    {
        var ex = Assert.Throws<InvalidDataException>(() => Read($"{Header}\nt;1;x;0;0\n"));
        Assert.Contains("row 2 column 's2'", ex.Message);
    }

    [Theory]
    [InlineData(10, 4, 4, 2)]
    [InlineData(12, 4, 4, 3)]
    [InlineData(10, 4, 2, 4)]
    [InlineData(10, 10, 1, 1)]
    [InlineData(9, 10, 1, 0)]
    [InlineData(10, 1, 1, 10)]
    public void WindowCount_RowsWindowStride_CountsOnlyFullWindows(int rows, int window, int stride, int expected)
    {
        var line = new SensorLine("l", 1, new float[rows]);
        Assert.Equal(expected, line.WindowCount(window, stride));
    }

    [Fact]
    public void Window_Index_StartsAtIndexTimesStrideRows()
    {
        var line = new SensorLine("l", 2, [.. Enumerable.Range(0, 20).Select(i => (float)i)]);

        var second = line.Window(1, window: 3, stride: 2).ToArray();

        Assert.Equal([4f, 5f, 6f, 7f, 8f, 9f], second);
        Assert.Throws<ArgumentOutOfRangeException>(() => line.Window(4, 3, 2));
    }

    [Fact]
    public void WindowSource_TwoLines_AlternatesLinesAndAdvancesEachInTurn()
    {
        var a = new SensorLine("a", 1, [0, 1, 2, 3]);
        var b = new SensorLine("b", 1, [10, 11, 12, 13, 14, 15]);
        var source = new WindowSource([a, b], window: 2, stride: 2);

        var taken = Enumerable.Range(0, 6).Select(_ => source.Next()).Select(w => (w.LineId, w.Values.ToArray()[0])).ToArray();

        Assert.Equal([("a", 0f), ("b", 10f), ("a", 2f), ("b", 12f), ("a", 0f), ("b", 14f)], taken);
    }

    [Fact]
    public void WindowSource_LinesShorterThanWindow_AreLeftOutOrRejected()
    {
        var shortLine = new SensorLine("short", 1, [1]);
        Assert.Throws<ArgumentException>(() => new WindowSource([shortLine], 2, 1));
        Assert.Equal(1, new WindowSource([shortLine, new SensorLine("ok", 1, [1, 2])], 2, 1).Lines);
    }

    [SkippableFact]
    public void ReadDirectory_Skab_ReadsEveryRecordingAsALineWithEightSensors()
    {
        var directory = SkabDataset.Require(Path.Combine("valve1", "0.csv"));

        var lines = SensorCsv.ReadDirectory(directory, expectedChannels: 8);

        Assert.Contains(lines, l => l.Id == "valve1/0");
        Assert.Contains(lines, l => l.Id == "anomaly-free/anomaly-free");
        Assert.All(lines, l => Assert.Equal(8, l.Channels));
        Assert.All(lines, l => Assert.True(l.Rows > 500, $"{l.Id} has {l.Rows} rows"));
        // First row of valve1/0.csv: 0.0265878;0.0401113;1.3302;0.054711;79.3366;26.0199;233.062;32.0
        var valve = lines.Single(l => l.Id == "valve1/0");
        Assert.Equal([0.0265878f, 0.0401113f, 1.3302f, 0.054711f, 79.3366f, 26.0199f, 233.062f, 32.0f], valve.Values[..8]);
    }
}

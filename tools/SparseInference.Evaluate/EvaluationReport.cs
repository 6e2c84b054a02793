using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SparseInference.Evaluate;

/// <summary>The Markdown tables and the JSON document of an evaluation.</summary>
public static class EvaluationReport
{
    /// <summary>The evaluated groups in the order they were loaded, then <c>all</c>.</summary>
    private static List<string> GroupOrder(EvaluationResult evaluation) =>
        [.. evaluation.Experiments.Select(e => e.Group).Distinct(), "all"];

    /// <summary>One row of detection figures per variant and transport.</summary>
    public static string MetricsTable(EvaluationResult evaluation)
    {
        var groups = GroupOrder(evaluation);
        var sb = new StringBuilder("| variant | protocol | threshold | density |");
        foreach (var g in groups)
            sb.Append(CultureInfo.InvariantCulture, $" {g} F1 | {g} FAR % | {g} MAR % |");
        sb.AppendLine().Append("|---|---|---|---|").Append(string.Concat(Enumerable.Repeat("---|---|---|", groups.Count))).AppendLine();
        foreach (var r in evaluation.Results)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {r.Variant.Name} | {r.Transport} | {r.Threshold} | {r.Density:F3} |");
            AppendGroups(sb, groups, r.Groups);
        }
        foreach (var c in evaluation.Classical)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {c.Detector} | – | per line | – |");
            AppendGroups(sb, groups, c.Groups);
        }
        return sb.ToString();
    }

    private static void AppendGroups(StringBuilder sb, IReadOnlyList<string> groups, IReadOnlyDictionary<string, BinaryScores> figures)
    {
        foreach (var g in groups)
        {
            if (figures.TryGetValue(g, out var m))
                sb.Append(CultureInfo.InvariantCulture, $" {m.F1:F3} | {100 * m.Far:F2} | {100 * m.Mar:F2} |");
            else
                sb.Append(" – | – | – |");
        }
        sb.AppendLine();
    }

    /// <summary>One row of throughput per variant and transport, with the server's own split where its statistics answered.</summary>
    public static string ThroughputTable(EvaluationResult evaluation)
    {
        var s = evaluation.Settings;
        var sb = new StringBuilder()
            .AppendLine("| variant | protocol | windows | requests | seconds (median pass) | windows/s | windows/s range | requests/s | server compute ms/request | server queue ms/request |")
            .AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in evaluation.Results)
        {
            var compute = r.Server is { ComputeCount: > 0 } c ? (c.AverageComputeUs / 1000).ToString("F2", CultureInfo.InvariantCulture) : "–";
            var queue = r.Server is { QueueCount: > 0 } q ? (q.AverageQueueUs / 1000).ToString("F2", CultureInfo.InvariantCulture) : "–";
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Variant.Name} | {r.Transport} | {r.Windows} | {r.Requests} | {r.Seconds:F2} | {r.WindowsPerSecond:F0} | {r.SlowestWindowsPerSecond:F0}–{r.FastestWindowsPerSecond:F0} | {r.RequestsPerSecond:F1} | {compute} | {queue} |");
        }
        sb.AppendLine(CultureInfo.InvariantCulture, $"\n{s.Batch} windows per request (the last of each file shorter), {s.Concurrency} requests in flight, median of {s.Rounds} pass(es).");
        var changed = evaluation.Results.Where(r => !r.Repeatable).Select(r => $"{r.Variant.Name}/{r.Transport}").ToList();
        if (s.Rounds > 1)
            sb.AppendLine(changed.Count == 0 ? "Every pass returned bit-identical scores." : $"Scores differed between passes for: {string.Join(", ", changed)}.");
        return sb.ToString();
    }

    public static string Markdown(EvaluationResult evaluation)
    {
        var c = evaluation.Calibration;
        var files = evaluation.Experiments;
        var testRows = files.Sum(e => (long)c.Detector.TestRows(e));
        var scoring = evaluation.Settings.Scoring != ScoringMode.Model && c.Rule is { } rule
            ? FormattableString.Invariant($"per-line onboarding on each file's first {SkabData.TrainRows} rows{(evaluation.Settings.Scoring == ScoringMode.Service ? " through the service's admin API, raw readings scored by the service" : "")} (flag: mean calibrated score over the last {rule.Positions} positions > {rule.Margin} × the {1 - rule.FalseAlarmRate} quantile on the onboarding stretch)")
            : FormattableString.Invariant($"inputs standardized per file, score over the last {c.Detector.ScorePositions} positions against the model's thresholds");
        return new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture,
                $"SKAB through the service: model {c.Model} version {c.Version}, {files.Count} files, {testRows} test rows; window {c.Detector.Window}; {scoring}.")
            .AppendLine()
            .Append(MetricsTable(evaluation))
            .AppendLine()
            .Append(ThroughputTable(evaluation))
            .ToString();
    }

    public static string Json(EvaluationResult evaluation)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            var c = evaluation.Calibration;
            var s = evaluation.Settings;
            w.WriteStartObject();
            w.WriteString("started_utc", evaluation.Started.ToString("O", CultureInfo.InvariantCulture));
            w.WriteString("model", c.Model);
            w.WriteString("version", c.Version);
            w.WriteStartObject("protocol");
            w.WriteNumber("train_rows", SkabData.TrainRows);
            w.WriteNumber("window", c.Detector.Window);
            w.WriteNumber("score_positions", c.Detector.ScorePositions);
            w.WriteNumber("model_threshold", c.ModelThreshold);
            w.WriteString("scoring", EvaluateCommand.ScoringName(evaluation.Settings.Scoring));
            if (evaluation.Settings.Scoring != ScoringMode.Model && c.Rule is { } rule)
            {
                w.WriteStartObject("line_baseline");
                w.WriteNumber("positions", rule.Positions);
                w.WriteNumber("false_alarm_rate", rule.FalseAlarmRate);
                w.WriteNumber("margin", rule.Margin);
                w.WriteNumber("residual_std_floor", rule.ResidualStdFloor);
                w.WriteEndObject();
            }
            w.WriteStartArray("files");
            foreach (var e in evaluation.Experiments)
                w.WriteStringValue(e.Id);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartObject("client");
            w.WriteString("rest_url", s.RestUrl);
            w.WriteString("grpc_url", s.GrpcUrl);
            w.WriteNumber("batch", s.Batch);
            w.WriteNumber("concurrency", s.Concurrency);
            w.WriteNumber("rounds", s.Rounds);
            w.WriteEndObject();
            w.WriteStartArray("results");
            foreach (var r in evaluation.Results)
            {
                w.WriteStartObject();
                w.WriteString("variant", r.Variant.Name);
                w.WriteString("pattern", r.Variant.Pattern);
                w.WriteNumber("sparsity", r.Variant.Sparsity);
                w.WriteString("protocol", r.Transport);
                if (r.LineThresholds is { } lines)
                {
                    w.WriteString("threshold_source", "line baseline");
                    w.WriteStartObject("line_thresholds");
                    foreach (var (line, threshold) in lines.OrderBy(l => l.Key, StringComparer.Ordinal))
                        w.WriteNumber(line, threshold);
                    w.WriteEndObject();
                }
                else
                {
                    w.WriteNumber("threshold", r.Variant.Threshold);
                    w.WriteString("threshold_source", r.Variant.ThresholdSource);
                }
                w.WriteNumber("density", r.Density);
                WriteGroups(w, r.Groups);
                w.WriteStartObject("throughput");
                w.WriteNumber("windows", r.Windows);
                w.WriteNumber("requests", r.Requests);
                w.WriteNumber("seconds", r.Seconds);
                w.WriteStartArray("pass_seconds");
                foreach (var seconds in r.PassSeconds)
                    w.WriteNumberValue(seconds);
                w.WriteEndArray();
                w.WriteBoolean("scores_identical_across_passes", r.Repeatable);
                w.WriteNumber("windows_per_s", r.WindowsPerSecond);
                w.WriteNumber("requests_per_s", r.RequestsPerSecond);
                if (r.Server is { } server)
                {
                    w.WriteNumber("server_compute_infer_avg_us", server.AverageComputeUs);
                    w.WriteNumber("server_queue_avg_us", server.AverageQueueUs);
                    w.WriteNumber("server_success_count", server.SuccessCount);
                    w.WriteNumber("server_inference_count", server.InferenceCount);
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("classical");
            foreach (var classical in evaluation.Classical)
            {
                w.WriteStartObject();
                w.WriteString("detector", classical.Detector);
                WriteGroups(w, classical.Groups);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteGroups(Utf8JsonWriter w, IReadOnlyDictionary<string, BinaryScores> groups)
    {
        w.WriteStartObject("groups");
        foreach (var (group, m) in groups)
        {
            w.WriteStartObject(group);
            w.WriteNumber("f1", m.F1);
            w.WriteNumber("far", m.Far);
            w.WriteNumber("mar", m.Mar);
            w.WriteNumber("tp", m.TruePositives);
            w.WriteNumber("fp", m.FalsePositives);
            w.WriteNumber("fn", m.FalseNegatives);
            w.WriteNumber("tn", m.TrueNegatives);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}

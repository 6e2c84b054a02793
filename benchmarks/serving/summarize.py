"""Collects the run's JSON into summary.json (with same-run ratios) and draws the latency-vs-throughput plot."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results, plot_path = sys.argv[1], sys.argv[2]
TITLE = sys.argv[3] if len(sys.argv) > 3 else ""


def load(name):
    with open(os.path.join(results, name), encoding="utf-8") as f:
        return json.load(f)


def level(name):
    r = load(name)["results"][0]
    server = r.get("server") or {}
    return {
        "throughput_per_s": r["throughput_per_s"],
        "succeeded": r["succeeded"],
        "failures": r["failures"],
        "latency_ms": {k: r["latency_ms"][k] for k in ("p50", "p90", "p95", "p99", "max")},
        "server_queue_avg_us": server.get("queue_avg_us"),
        "server_compute_avg_us": server.get("compute_infer_avg_us"),
        "server_avg_batch": server.get("avg_batch"),
    }


summary = {"machine": load("machine.json") | load("machine-end.json"), "batching": {}, "overhead": {}, "swap": {}}
concurrency = [1, 8, 32, 128]
MODES = {
    "off": ("tab:red", "batching off (max_batch_size 1)"),
    "on": ("tab:blue", "batching on (max_batch_size 32, 500 us)"),
    "on8": ("tab:green", "batching on (max_batch_size 8, 500 us)"),
}
for mode in MODES:
    summary["batching"][mode] = {str(c): level(f"batching-{mode}-c{c}.json") for c in concurrency}
off = summary["batching"]["off"]
# The single-request latency the goal refers to: one client, no batching.
single_p99 = off["1"]["latency_ms"]["p99"]
summary["batching"]["ratios"], summary["batching"]["goal_c32"] = {}, {}
for mode in ("on", "on8"):
    on = summary["batching"][mode]
    summary["batching"]["ratios"][mode] = {
        str(c): {
            "throughput_on_over_off": on[str(c)]["throughput_per_s"] / off[str(c)]["throughput_per_s"],
            "p99_on_over_off": on[str(c)]["latency_ms"]["p99"] / off[str(c)]["latency_ms"]["p99"],
            "p99_on_over_single_request_p99": on[str(c)]["latency_ms"]["p99"] / single_p99,
        }
        for c in concurrency
    }
    r32 = summary["batching"]["ratios"][mode]["32"]
    summary["batching"]["goal_c32"][mode] = {
        "throughput_ratio": r32["throughput_on_over_off"],
        "p99_over_single_request_p99": r32["p99_on_over_single_request_p99"],
        "met": r32["throughput_on_over_off"] >= 3 and r32["p99_on_over_single_request_p99"] <= 2,
    }

def per_window_compute(name):
    """Engine compute per window by batch size, from batch_stats (cumulative over the sweep)."""
    out = {}
    for model in load(name).get("model_stats", []):
        for b in model.get("batch_stats", []):
            size, infer = b["batch_size"], b["compute_infer"]
            count, ns = out.get(size, (0, 0))
            out[size] = (count + infer["count"], ns + infer["ns"])
    return {str(size): {"forwards": c, "forward_avg_us": ns / 1000 / c, "per_window_us": ns / 1000 / c / size}
            for size, (c, ns) in sorted(out.items()) if c}


summary["batching"]["engine_by_batch_size"] = {
    "on": per_window_compute("batching-on.stats.json"),
    "off": per_window_compute("batching-off.stats.json"),
    "on8": per_window_compute("batching-on8.stats.json"),
}
with open(os.path.join(results, "load.txt"), encoding="utf-8") as f:
    summary["machine"]["load_samples"] = [line.strip() for line in f if line.strip()]

def present(name):
    return os.path.exists(os.path.join(results, name))


# The overhead and swap parts are optional (run.sh's PARTS).
for proto in ("rest-binary", "rest-json", "grpc"):
    for model in ("skab-pump", "skab-pump-unbatched"):
        if not present(f"overhead-{proto}-{model}.json"):
            continue
        client = level(f"overhead-{proto}-{model}.json")
        server = load(f"overhead-{proto}-{model}.server.json")
        compute = (server.get("compute_infer") or {}).get("avg_us")
        summary["overhead"][f"{proto}/{model}"] = {
            "client_p50_ms": client["latency_ms"]["p50"],
            "client_p99_ms": client["latency_ms"]["p99"],
            "throughput_per_s": client["throughput_per_s"],
            "server_total_avg_us": (server.get("success") or {}).get("avg_us"),
            "server_queue_avg_us": (server.get("queue") or {}).get("avg_us"),
            "server_input_avg_us": (server.get("compute_input") or {}).get("avg_us"),
            "server_compute_avg_us": compute,
            "server_output_avg_us": (server.get("compute_output") or {}).get("avg_us"),
            "server_minus_compute_avg_us": server.get("server_minus_compute_avg_us"),
            # Upper bound on everything outside the forward: client stack, loopback, HTTP/gRPC, decode, encode.
            "client_p50_minus_compute_us": client["latency_ms"]["p50"] * 1000 - compute if compute else None,
        }

if present("swap-changes.json"):
    for phase in ("before", "during", "after"):
        summary["swap"][phase] = level(f"swap-{phase}.json")
    summary["swap"]["changes"] = load("swap-changes.json")

with open(os.path.join(results, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2)

fig, (ax50, ax99) = plt.subplots(1, 2, figsize=(11, 4.5))
for mode, (color, label) in MODES.items():
    data = summary["batching"][mode]
    xs = [data[str(c)]["throughput_per_s"] for c in concurrency]
    for ax, pct in ((ax50, "p50"), (ax99, "p99")):
        ys = [data[str(c)]["latency_ms"][pct] for c in concurrency]
        ax.plot(xs, ys, "o-", color=color, label=label)
        for c, x, y in zip(concurrency, xs, ys):
            ax.annotate(f"c={c}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8, color=color)
for ax, pct in ((ax50, "p50"), (ax99, "p99")):
    ax.set_xlabel("throughput (requests/s, one 64x8 window each)")
    ax.set_ylabel(f"client {pct} latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"skab-pump, REST binary: {pct} vs throughput")
fig.legend(*ax50.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
m = summary["machine"]
cores = f"{m['cores']} cores (shared)" if m.get("server_cpus", "all") == "all" else \
    f"server on CPUs {m['server_cpus']}, load generator on CPUs {m['loadgen_cpus']}"
fig.suptitle(f"Dynamic batching on vs off, concurrency 1/8/32/128{', ' + TITLE if TITLE else ''}\n"
             f"{m['cpu']}, {cores}, {m['started_utc']}", fontsize=9)
fig.tight_layout(rect=(0, 0.06, 1, 1))
fig.savefig(plot_path, dpi=110)

b = summary["batching"]
print("batching (throughput/s, p50/p90/p95/p99 ms, server queue/compute us, avg batch):")
for c in concurrency:
    for mode in MODES:
        d = b[mode][str(c)]
        lat = d["latency_ms"]
        print(f"  c={c:<4} {mode:<3} {d['throughput_per_s']:8.1f}  {lat['p50']:.2f}/{lat['p90']:.2f}/{lat['p95']:.2f}/{lat['p99']:.2f}  "
              f"q {d['server_queue_avg_us'] or 0:.0f} c {d['server_compute_avg_us'] or 0:.0f}  b {d['server_avg_batch'] or 0:.2f}  fail {d['failures']}")
    for mode in ("on", "on8"):
        r = b["ratios"][mode][str(c)]
        print(f"         {mode}/off throughput x{r['throughput_on_over_off']:.2f}  p99 on/off x{r['p99_on_over_off']:.2f}  p99 on / single p99 x{r['p99_on_over_single_request_p99']:.2f}")
print("goal at c=32:", b["goal_c32"])
for mode in MODES:
    sizes = b["engine_by_batch_size"][mode]
    print(f"  engine {mode}: " + ", ".join(f"b{k}: {v['forwards']}x {v['forward_avg_us']:.0f} us ({v['per_window_us']:.0f}/window)" for k, v in sizes.items() if v["forwards"] >= 5))
print("load samples:", *summary["machine"]["load_samples"], sep="\n  ")
print("overhead (c=1):")
for key, d in summary["overhead"].items():
    print(f"  {key:<32} client p50 {d['client_p50_ms']*1000:.0f} us  server total {d['server_total_avg_us'] or 0:.0f}  queue {d['server_queue_avg_us'] or 0:.0f}  "
          f"compute {d['server_compute_avg_us'] or 0:.0f}  server-compute {d['server_minus_compute_avg_us'] or 0:.0f}  client p50-compute {d['client_p50_minus_compute_us'] or 0:.0f}")
if summary["swap"]:
    print("swap:")
    for phase in ("before", "during", "after"):
        d = summary["swap"][phase]
        print(f"  {phase:<6} ok {d['succeeded']} failures {d['failures']} throughput {d['throughput_per_s']:.1f} p99 {d['latency_ms']['p99']:.2f} ms")
    print("  changes:", summary["swap"]["changes"])

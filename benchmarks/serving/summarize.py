"""Collects a run's JSON into summary.json (medians over rounds, same-run ratios, the policy goals), prints the table
and draws throughput and latency by concurrency for every batching mode.
   summarize.py RESULTS_DIR PLOT.png [TITLE]"""
import json
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results, plot_path = sys.argv[1], sys.argv[2]
TITLE = sys.argv[3] if len(sys.argv) > 3 else ""

# Mode: (colour, marker, label). "on" / "on8" are the names earlier runs gave the delay policy.
MODES = {
    "off": ("tab:red", "s", "unbatched (max_batch_size 1)"),
    "wc": ("tab:blue", "o", "work-conserving, max 32 (default policy)"),
    "wc8": ("tab:cyan", "o", "work-conserving, max 8"),
    "delay": ("tab:green", "^", "delay policy, max 32, 500 us (Triton)"),
    "delay8": ("tab:olive", "^", "delay policy, max 8, 500 us (Triton)"),
    "on": ("tab:green", "^", "delay policy, max 32, 500 us (Triton)"),
    "on8": ("tab:olive", "^", "delay policy, max 8, 500 us (Triton)"),
}
# The new policy against its peers of the same batch size: (new, delay peer).
GOALS = {"wc": "delay", "wc8": "delay8"}
THROUGHPUT_GOAL = 0.95  # the new policy's throughput over the better of unbatched and delay, at every concurrency
P50_GOAL = 1.10  # the new policy's p50 over unbatched, at concurrency 1


def load(name):
    with open(os.path.join(results, name), encoding="utf-8") as f:
        return json.load(f)


def present(name):
    return os.path.exists(os.path.join(results, name))


def run(name):
    r = load(name)["results"][0]
    server = r.get("server") or {}
    cpu = load(name[:-5] + ".cpu.json") if present(name[:-5] + ".cpu.json") else {}
    return {
        # Server CPU time per served request over the level (warm-up included); None where the run did not record it.
        "server_cpu_us_per_request": cpu["server_cpu_ticks"] / cpu["ticks_per_s"] * 1e6 / cpu["served"] if cpu.get("served") else None,
        "throughput_per_s": r["throughput_per_s"],
        "succeeded": r["succeeded"],
        "failures": sum((r.get("failures") or {}).values()),
        "latency_ms": {k: r["latency_ms"][k] for k in ("p50", "p90", "p95", "p99", "max")},
        "server_queue_avg_us": server.get("queue_avg_us"),
        "server_compute_avg_us": server.get("compute_infer_avg_us"),
        "server_avg_batch": server.get("avg_batch"),
    }


def paired(new, delay, key):
    by_round = {mode: {r["round"]: r["throughput_per_s"] for r in batching[mode][key]["runs"]} for mode in (new, "off", delay)}
    common = set(by_round[new]) & set(by_round["off"]) & set(by_round[delay])
    return median([by_round[new][r] / max(by_round["off"][r], by_round[delay][r]) for r in common])


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def level(runs):
    """Medians over the rounds of one mode and concurrency, each figure on its own; the rounds kept beside."""
    return {
        "rounds": len(runs),
        "throughput_per_s": median([r["throughput_per_s"] for r in runs]),
        "throughput_range": [min(r["throughput_per_s"] for r in runs), max(r["throughput_per_s"] for r in runs)],
        "succeeded": sum(r["succeeded"] for r in runs),
        "failures": sum(r["failures"] for r in runs),
        "latency_ms": {k: median([r["latency_ms"][k] for r in runs]) for k in runs[0]["latency_ms"]},
        "server_queue_avg_us": median([r["server_queue_avg_us"] for r in runs]),
        "server_compute_avg_us": median([r["server_compute_avg_us"] for r in runs]),
        "server_avg_batch": median([r["server_avg_batch"] for r in runs]),
        "server_cpu_us_per_request": median([r["server_cpu_us_per_request"] for r in runs]),
        "runs": runs,
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


summary = {"machine": load("machine.json") | (load("machine-end.json") if present("machine-end.json") else {}),
           "batching": {}, "goals": {}, "overhead": {}, "swap": {}}

found = {}
for name in sorted(os.listdir(results)):
    m = re.fullmatch(r"batching-([a-z0-9]+)-c(\d+)(?:-r(\d+))?\.json", name)
    if m and m.group(1) in MODES:
        found.setdefault(m.group(1), {}).setdefault(int(m.group(2)), []).append(run(name) | {"round": int(m.group(3) or 1)})
modes = [mode for mode in MODES if mode in found]
concurrency = sorted({c for mode in modes for c in found[mode]})
batching = summary["batching"]
for mode in modes:
    batching[mode] = {str(c): level(found[mode][c]) for c in sorted(found[mode])}

for new, delay in GOALS.items():
    if new not in batching or "off" not in batching or delay not in batching:
        continue
    rows, met = {}, True
    for c in concurrency:
        key = str(c)
        if key not in batching[new] or key not in batching["off"] or key not in batching[delay]:
            continue
        best_peer = max(batching["off"][key]["throughput_per_s"], batching[delay][key]["throughput_per_s"])
        ratio = batching[new][key]["throughput_per_s"] / best_peer
        rows[key] = {
            "over_unbatched": batching[new][key]["throughput_per_s"] / batching["off"][key]["throughput_per_s"],
            "over_delay": batching[new][key]["throughput_per_s"] / batching[delay][key]["throughput_per_s"],
            "over_better_peer": ratio,
            # The same ratio within each round (runs seconds apart), then the median: less exposed to load drift.
            "over_better_peer_paired": paired(new, delay, key),
            "met": ratio >= THROUGHPUT_GOAL,
        }
        met &= ratio >= THROUGHPUT_GOAL
    goal = {"throughput": rows, "throughput_met_everywhere": met and bool(rows)}
    if "1" in batching[new] and "1" in batching["off"]:
        p50 = batching[new]["1"]["latency_ms"]["p50"] / batching["off"]["1"]["latency_ms"]["p50"]
        goal["p50_c1_over_unbatched"] = p50
        goal["p50_c1_met"] = p50 <= P50_GOAL
    summary["goals"][f"{new} vs off and {delay}"] = goal

summary["batching"]["engine_by_batch_size"] = {
    mode: per_window_compute(f"batching-{mode}.stats.json") for mode in modes if present(f"batching-{mode}.stats.json")}
if present("load.txt"):
    with open(os.path.join(results, "load.txt"), encoding="utf-8") as f:
        summary["machine"]["load_samples"] = [line.strip() for line in f if line.strip()]

# The overhead and swap parts are optional (run.sh's PARTS).
for proto in ("rest-binary", "rest-json", "grpc"):
    for model in ("skab-pump", "skab-pump-unbatched"):
        if not present(f"overhead-{proto}-{model}.json"):
            continue
        client = run(f"overhead-{proto}-{model}.json")
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
        summary["swap"][phase] = run(f"swap-{phase}.json")
    summary["swap"]["changes"] = load("swap-changes.json")

with open(os.path.join(results, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2)

fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
for mode in modes:
    color, marker, label = MODES[mode]
    levels = [c for c in concurrency if str(c) in batching[mode]]
    data = [batching[mode][str(c)] for c in levels]
    style = "-" if mode in GOALS or mode == "off" else "--"
    axes[0].plot(levels, [d["throughput_per_s"] for d in data], marker + style, color=color, label=label)
    for ax, pct in ((axes[1], "p50"), (axes[2], "p99")):
        ax.plot(levels, [d["latency_ms"][pct] for d in data], marker + style, color=color, label=label)
for ax, what in zip(axes, ("throughput (requests/s)", "client p50 latency (ms)", "client p99 latency (ms)")):
    ax.set_xscale("log", base=2)
    ax.set_xticks(concurrency, [str(c) for c in concurrency])
    ax.set_xlabel("concurrent clients (closed loop)")
    ax.set_ylabel(what)
    if ax is not axes[0]:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylim(bottom=0)
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
m = summary["machine"]
cores = f"{m['cores']} cores (shared by server and load generator)" if m.get("server_cpus", "all") == "all" else \
    f"server on CPUs {m['server_cpus']}, load generator on CPUs {m['loadgen_cpus']}"
rounds = f", median of {m.get('rounds', 1)} interleaved rounds" if m.get("rounds", 1) > 1 else ""
fig.suptitle(f"Batching policies, skab-pump, REST binary, one 64x8 window per request{', ' + TITLE if TITLE else ''}\n"
             f"{m['cpu']}, server on {m.get('server_device', 'cpu')}, {cores}, {m['started_utc']}{rounds}", fontsize=9)
fig.tight_layout(rect=(0, 0.08, 1, 1))
fig.savefig(plot_path, dpi=110)

print("batching (median over rounds: throughput/s [min-max], p50/p90/p99 ms, server queue/compute us, avg batch, server CPU us/request):")
for c in concurrency:
    for mode in modes:
        if str(c) not in batching[mode]:
            continue
        d = batching[mode][str(c)]
        lat = d["latency_ms"]
        lo, hi = d["throughput_range"]
        print(f"  c={c:<4} {mode:<6} {d['throughput_per_s']:8.1f} [{lo:.0f}-{hi:.0f}]  {lat['p50']:.3f}/{lat['p90']:.3f}/{lat['p99']:.3f}  "
              f"q {d['server_queue_avg_us'] or 0:.0f} c {d['server_compute_avg_us'] or 0:.0f}  b {d['server_avg_batch'] or 0:.2f}  "
              f"cpu {d['server_cpu_us_per_request'] or 0:.0f}  fail {d['failures']}")
for name, goal in summary["goals"].items():
    print(f"goal {name}: throughput >= {THROUGHPUT_GOAL} x the better peer at every concurrency: {goal['throughput_met_everywhere']} ("
          + ", ".join(f"c={c} x{r['over_better_peer']:.3f} (paired x{r['over_better_peer_paired']:.3f})" for c, r in goal["throughput"].items())
          + f"); p50 at c=1 / unbatched x{goal.get('p50_c1_over_unbatched', float('nan')):.3f} (<= {P50_GOAL}: {goal.get('p50_c1_met')})")
for mode, sizes in summary["batching"]["engine_by_batch_size"].items():
    print(f"  engine {mode}: " + ", ".join(f"b{k}: {v['forwards']}x {v['forward_avg_us']:.0f} us ({v['per_window_us']:.0f}/window)"
                                          for k, v in sizes.items() if v["forwards"] >= 5))
if summary["overhead"]:
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
print("load samples:", *summary["machine"].get("load_samples", []), sep="\n  ")

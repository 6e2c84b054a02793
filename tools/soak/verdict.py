"""Judges a soak run from the files tools/soak/soak.sh leaves in its result directory.

Writes verdict.json beside them and prints a human summary. Verdicts:
  failed requests: zero, by the load generator's count and by the server's own request counters;
  swaps: every admin-API change answered 200;
  memory, threads, handles (open descriptors other than sockets; the client connections are reported apart): the median of the last fifth of the judged samples (those after --settle seconds) may
  exceed the median of the first fifth by at most the stated tolerance;
  liveness: /v2/health/live answered 200 after the soak.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("out_dir")
parser.add_argument("--settle", type=float, default=60)
parser.add_argument("--rss-tolerance-pct", type=float, default=10)
parser.add_argument("--thread-tolerance", type=float, default=8)
parser.add_argument("--handle-tolerance", type=float, default=8)
parser.add_argument("--rate", type=float, required=True)
parser.add_argument("--capacity", type=float, required=True)
parser.add_argument("--duration", type=float, required=True)
parser.add_argument("--swap-interval", type=float, required=True)
parser.add_argument("--live-status", default="")
args = parser.parse_args()
out = Path(args.out_dir)


def table(name):
    lines = (out / name).read_text().split("\n")
    header = lines[0].split()
    return [dict(zip(header, line.split())) for line in lines[1:] if line.strip()]


samples = [{k: float(v) for k, v in row.items()} for row in table("samples.txt")]
swaps = table("swaps.txt")
load = json.loads((out / "soak.json").read_text())["results"][0]

judged = [s for s in samples if s["elapsed_s"] >= args.settle]
if len(judged) < 10:
    sys.exit(f"only {len(judged)} samples after the {args.settle:.0f} s settle time; run longer")
fifth = max(2, len(judged) // 5)
first, last = judged[:fifth], judged[-fifth:]


def drift(key):
    a, b = statistics.median(s[key] for s in first), statistics.median(s[key] for s in last)
    return a, b, b - a


rss_a, rss_b, rss_d = drift("rss_kb")
thr_a, thr_b, thr_d = drift("threads")
fd_a, fd_b, fd_d = drift("fds")
has_sockets = all("sockets" in s for s in samples)
client_failed = load["completed"] - load["succeeded"]
server_failed = int(samples[-1]["server_failed"])
swap_failed = sum(1 for s in swaps if s["http_status"] != "200")

checks = {
    "zero_failed_requests": client_failed == 0 and server_failed == 0 and not load["failures"],
    "all_swaps_accepted": len(swaps) > 0 and swap_failed == 0,
    "memory_flat": rss_d <= rss_a * args.rss_tolerance_pct / 100,
    "threads_flat": thr_d <= args.thread_tolerance,
    "handles_flat": fd_d <= args.handle_tolerance,
    "live_after_soak": args.live_status == "200",
}
verdict = {
    "capacity_per_s": args.capacity,
    "offered_rate_per_s": args.rate,
    "duration_s": args.duration,
    "swap_interval_s": args.swap_interval,
    "requests": {
        "completed": load["completed"],
        "succeeded": load["succeeded"],
        "failed": client_failed,
        "failures_by_status": load["failures"],
        "server_success": int(samples[-1]["server_success"]),
        "server_failed": server_failed,
        "throughput_per_s": load["throughput_per_s"],
        "latency_ms": load["latency_ms"],
    },
    "swaps": {"count": len(swaps), "failed": swap_failed,
              "seconds_max": max((float(s["seconds"]) for s in swaps), default=None)},
    "judged_window": {"settle_s": args.settle, "samples": len(judged), "samples_per_end": fifth},
    "rss_kb": {"first_median": rss_a, "last_median": rss_b, "growth": rss_d, "max": max(s["rss_kb"] for s in judged),
               "tolerance_pct": args.rss_tolerance_pct},
    "threads": {"first_median": thr_a, "last_median": thr_b, "growth": thr_d, "min": min(s["threads"] for s in judged),
                "max": max(s["threads"] for s in judged), "tolerance": args.thread_tolerance},
    "handles": {"first_median": fd_a, "last_median": fd_b, "growth": fd_d, "min": min(s["fds"] for s in judged),
                "max": max(s["fds"] for s in judged), "tolerance": args.handle_tolerance},
    "sockets": {"min": min(s["sockets"] for s in judged), "max": max(s["sockets"] for s in judged)} if has_sockets else None,
    "checks": checks,
    "pass": all(checks.values()),
}
(out / "verdict.json").write_text(json.dumps(verdict, indent=2) + "\n")

lat = load["latency_ms"]
print(f"requests {load['completed']} succeeded {load['succeeded']} failed {client_failed} (server counted "
      f"{int(samples[-1]['server_success'])} ok, {server_failed} not ok); {load['throughput_per_s']:.1f}/s, "
      f"p50 {lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms max {lat['max']:.1f} ms")
print(f"swaps {len(swaps)} failed {swap_failed}")
print(f"rss MiB {rss_a / 1024:.1f} -> {rss_b / 1024:.1f} (growth {rss_d / 1024:+.1f}, allowed {args.rss_tolerance_pct:g}%); "
      f"threads {thr_a:g} -> {thr_b:g} (allowed +{args.thread_tolerance:g}); "
      f"handles {fd_a:g} -> {fd_b:g} (allowed +{args.handle_tolerance:g})"
      + (f"; sockets {verdict['sockets']['min']:g}..{verdict['sockets']['max']:g} (not judged)" if has_sockets else ""))
failed_samples = [s["elapsed_s"] for a, s in zip(samples, samples[1:]) if s["server_failed"] > a["server_failed"]]
if failed_samples:
    print(f"server-side failures grew in the samples ending at {', '.join(f'{t:g}' for t in failed_samples)} s")
for name, ok in checks.items():
    print(f"  {'ok  ' if ok else 'FAIL'} {name}")
print("verdict: " + ("PASS" if verdict["pass"] else "FAIL"))

#!/usr/bin/env bash
# Interleaved before/after comparison of two Release builds of the server on the same machine, in the same minutes:
# both servers run at once (idle in turn), and each level runs against one, then the other, ROUNDS times.
#   benchmarks/serving/compare.sh BEFORE_ROOT AFTER_ROOT [OUT_DIR]
# BEFORE_ROOT / AFTER_ROOT: checkouts (e.g. from `git archive <commit> | tar -x -C dir`) with
# src/SparseInference.Server built in Release. Each server starts from its own output folder (shipped appsettings.json).
# A level is PROTOCOL-BATCHING-cCONCURRENCY: PROTOCOL rest (binary tensor data) or grpc (raw contents, Grpc.Net.Client),
# BATCHING off (max batch 1), on (32) or on8 (8) under Triton's delay policy (500 us; both builds must read
# serving.json's batching.policy), one 64x8 window per request.
# Environment: LEVELS (default: rest and grpc, unbatched, concurrency 1 and 32; the batching study used
# "rest-off-c1 rest-on-c1 rest-off-c8 rest-off-c32 rest-on-c32 rest-on8-c32"), DURATION (s per level, default 5),
# WARMUP (default 1), ROUNDS (default 2), TOLERANCE (default 0.05: a level whose median throughput falls, or median
# p50 or p99 rises, by more than this is reported slower), SKAB_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benchmarks/serving"
BEFORE="$(cd "$1" && pwd)"
AFTER="$(cd "$2" && pwd)"
OUT="${3:-$HERE/results-compare}"
PY=/usr/bin/python3
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
ROUNDS="${ROUNDS:-2}"
LEVELS="${LEVELS:-rest-off-c1 rest-off-c32 grpc-off-c1 grpc-off-c32}"
TOLERANCE="${TOLERANCE:-0.05}"
SKAB_DIR="${SKAB_DIR:-$ROOT/../shared/data/skab}"
[[ -d "$SKAB_DIR" ]] || [[ ! -d "$ROOT/../../shared/data/skab" ]] || SKAB_DIR="$(cd "$ROOT/../../shared/data/skab" && pwd)"
CSV_ARGS=()
if [[ -d "$SKAB_DIR" ]]; then CSV_ARGS=(--csv-dir "$SKAB_DIR"); fi
LOADGEN_DLL="$ROOT/tools/SparseInference.LoadGen/bin/Release/net10.0/SparseInference.LoadGen.dll"
[[ -f "$LOADGEN_DLL" ]] || dotnet build -c Release "$ROOT/tools/SparseInference.LoadGen/SparseInference.LoadGen.csproj" -v q -nologo
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
REPO="$(mktemp -d)"
LOGS="$(mktemp -d)"
"$PY" "$HERE/make_repository.py" "$ROOT/models/skab-pump" "$REPO"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$REPO" "$LOGS"
}
trap cleanup EXIT

declare -A URL GRPC_URL
start() {
  local name=$1 root=$2 rest grpc metrics admin
  read -r rest grpc metrics admin < <("$PY" -c '
import socket
socks=[socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1",0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')
  local dll="$root/src/SparseInference.Server/bin/Release/net10.0/SparseInference.Server.dll"
  (cd "$(dirname "$dll")" && SparseInference__Ports__Rest=$rest SparseInference__Ports__Grpc=$grpc \
    SparseInference__Ports__Metrics=$metrics SparseInference__Ports__Admin=$admin \
    SparseInference__ModelRepository="$REPO" SparseInference__Admin__Token=serving-benchmark-token \
    SparseInference__Shutdown__DrainDelaySeconds=0 exec dotnet "$dll" >"$LOGS/$name.log" 2>&1) &
  PIDS+=($!)
  URL[$name]="http://127.0.0.1:$rest"
  GRPC_URL[$name]="http://127.0.0.1:$grpc"
  for _ in $(seq 1 120); do curl -fs "${URL[$name]}/v2/health/ready" >/dev/null && return 0; sleep 0.5; done
  echo "$name did not become ready" >&2; cat "$LOGS/$name.log" >&2; exit 1
}
start before "$BEFORE"
start after "$AFTER"

# loadgen SERVER PROTOCOL ARGS...: REST binary or gRPC against one server.
loadgen() {
  dotnet "$LOADGEN_DLL" --url "${URL[$1]}" --grpc-url "${GRPC_URL[$1]}" --protocol "$2" "${CSV_ARGS[@]}" --encoding binary --json "${@:3}"
}
# Unmeasured warm-up of every model and protocol on both (JIT, connections, batchers).
for name in before after; do
  for model in skab-pump-delay skab-pump-delay8 skab-pump-unbatched; do
    for protocol in rest grpc; do
      loadgen "$name" "$protocol" -m "$model" --concurrency 8 --duration 2 --warmup 0 >/dev/null || true
    done
  done
done

: >"$OUT/load.txt"
echo "{\"started_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"uptime\": \"$(uptime)\", \"before\": \"$BEFORE\", \"after\": \"$AFTER\"}" >"$OUT/machine.json"
for round in $(seq 1 "$ROUNDS"); do
  for level in $LEVELS; do
    protocol=${level%%-*}; rest=${level#*-}; mode=${rest%-c*}; c=${rest#*-c}
    case $mode in off) model=skab-pump-unbatched ;; on) model=skab-pump-delay ;; on8) model=skab-pump-delay8 ;; *) echo "level $level: batching must be off, on or on8" >&2; exit 2 ;; esac
    # Alternate which build goes first, so neither always runs right after the other's level.
    order="before after"; (( round % 2 == 0 )) && order="after before"
    for name in $order; do
      echo "round $round $level $name $(date -u +%H:%M:%S) $(uptime | sed 's/.*load average: //')" | tee -a "$OUT/load.txt" >&2
      loadgen "$name" "$protocol" -m "$model" --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" >"$OUT/$name-$level-r$round.json"
    done
  done
done
echo "{\"finished_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"uptime\": \"$(uptime)\"}" >"$OUT/machine-end.json"

"$PY" - "$OUT" "$ROUNDS" "$TOLERANCE" $LEVELS <<'PY'
import json, os, statistics, sys
out, rounds, tolerance, levels = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
summary, verdicts = {}, {}
for level in levels:
    for name in ("before", "after"):
        runs = []
        for r in range(1, rounds + 1):
            res = json.load(open(os.path.join(out, f"{name}-{level}-r{r}.json")))["results"][0]
            server = res.get("server") or {}
            runs.append({"throughput_per_s": res["throughput_per_s"], "p50_ms": res["latency_ms"]["p50"], "p99_ms": res["latency_ms"]["p99"],
                         "failed": res["completed"] - res["succeeded"], "compute_avg_us": server.get("compute_infer_avg_us"), "queue_avg_us": server.get("queue_avg_us"),
                         "avg_batch": server.get("avg_batch")})
        med = lambda k: statistics.median([x[k] for x in runs if x[k] is not None]) if any(x[k] is not None for x in runs) else None
        summary[f"{name}/{level}"] = {"runs": runs, "median": {k: med(k) for k in runs[0]}}
    before, after = summary[f"before/{level}"]["median"], summary[f"after/{level}"]["median"]
    ratios = {"throughput": after["throughput_per_s"] / before["throughput_per_s"], "p50": after["p50_ms"] / before["p50_ms"], "p99": after["p99_ms"] / before["p99_ms"]}
    slower = ratios["throughput"] < 1 - tolerance or ratios["p50"] > 1 + tolerance or ratios["p99"] > 1 + tolerance
    verdicts[level] = {"after_over_before": ratios, "slower_than_tolerance": slower}
summary["verdicts"] = verdicts
summary["tolerance"] = tolerance
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(f"{'level':<16} {'before tput/s':>13} {'after tput/s':>13} {'ratio':>6} {'before p50':>10} {'after p50':>10} {'ratio':>6} {'before p99':>10} {'after p99':>10} {'ratio':>6}")
for level in levels:
    b, a, v = summary[f"before/{level}"]["median"], summary[f"after/{level}"]["median"], verdicts[level]["after_over_before"]
    flag = "  SLOWER" if verdicts[level]["slower_than_tolerance"] else ""
    print(f"{level:<16} {b['throughput_per_s']:>13.1f} {a['throughput_per_s']:>13.1f} {v['throughput']:>6.3f} {b['p50_ms']:>9.3f}m {a['p50_ms']:>9.3f}m {v['p50']:>6.3f} {b['p99_ms']:>9.3f}m {a['p99_ms']:>9.3f}m {v['p99']:>6.3f}{flag}")
PY

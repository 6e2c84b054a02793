#!/usr/bin/env bash
# Interleaved before/after comparison of two Release builds of the server on the same machine, in the same minutes:
# both servers run at once (idle in turn), and each level runs against one, then the other, ROUNDS times.
#   benchmarks/serving/compare.sh BEFORE_ROOT AFTER_ROOT [OUT_DIR]
# BEFORE_ROOT / AFTER_ROOT: checkouts (e.g. from `git archive <commit> | tar -x -C dir`) with
# src/SparseInference.Server built in Release. Each server starts from its own output folder (shipped appsettings.json).
# Levels: REST binary, one 64x8 window per request; concurrency 1 unbatched and batched (32), 8 unbatched, 32 off / on (32) / on8 (8).
# "on" is Triton's delay policy (500 us): both builds must read serving.json's batching.policy.
# Environment: DURATION (s per level, default 5), WARMUP (default 1), ROUNDS (default 2), SKAB_DIR.
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

declare -A URL
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
  for _ in $(seq 1 120); do curl -fs "${URL[$name]}/v2/health/ready" >/dev/null && return 0; sleep 0.5; done
  echo "$name did not become ready" >&2; cat "$LOGS/$name.log" >&2; exit 1
}
start before "$BEFORE"
start after "$AFTER"

loadgen() { dotnet "$LOADGEN_DLL" --url "$1" "${CSV_ARGS[@]}" --encoding binary --json "${@:2}"; }
# Unmeasured warm-up of every model on both (JIT, connections, batchers).
for name in before after; do
  for model in skab-pump-delay skab-pump-delay8 skab-pump-unbatched; do
    loadgen "${URL[$name]}" -m "$model" --concurrency 8 --duration 3 --warmup 0 >/dev/null || true
  done
done

: >"$OUT/load.txt"
echo "{\"started_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"uptime\": \"$(uptime)\", \"before\": \"$BEFORE\", \"after\": \"$AFTER\"}" >"$OUT/machine.json"
for round in $(seq 1 "$ROUNDS"); do
  for level in off-c1 on-c1 off-c8 off-c32 on-c32 on8-c32; do
    mode=${level%-c*}; c=${level#*-c}
    case $mode in off) model=skab-pump-unbatched ;; on) model=skab-pump-delay ;; on8) model=skab-pump-delay8 ;; esac
    for name in before after; do
      echo "round $round $level $name $(date -u +%H:%M:%S) $(uptime | sed 's/.*load average: //')" | tee -a "$OUT/load.txt" >&2
      loadgen "${URL[$name]}" -m "$model" --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" >"$OUT/$name-$level-r$round.json"
    done
  done
done
echo "{\"finished_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"uptime\": \"$(uptime)\"}" >"$OUT/machine-end.json"

"$PY" - "$OUT" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
summary = {}
for level in ("off-c1", "on-c1", "off-c8", "off-c32", "on-c32", "on8-c32"):
    for name in ("before", "after"):
        runs = []
        for r in range(1, rounds + 1):
            res = json.load(open(os.path.join(out, f"{name}-{level}-r{r}.json")))["results"][0]
            server = res.get("server") or {}
            runs.append({"throughput_per_s": res["throughput_per_s"], "p50_ms": res["latency_ms"]["p50"], "p99_ms": res["latency_ms"]["p99"],
                         "compute_avg_us": server.get("compute_infer_avg_us"), "queue_avg_us": server.get("queue_avg_us"), "avg_batch": server.get("avg_batch")})
        med = lambda k: statistics.median([x[k] for x in runs if x[k] is not None]) if any(x[k] is not None for x in runs) else None
        summary[f"{name}/{level}"] = {"runs": runs, "median": {k: med(k) for k in runs[0]}}
for name in ("before", "after"):
    m = summary[f"{name}/off-c1"]["median"]
    summary[f"{name}/client_p50_minus_compute_us"] = m["p50_ms"] * 1000 - m["compute_avg_us"]
    off = summary[f"{name}/off-c32"]["median"]["throughput_per_s"]
    for mode in ("on", "on8"):
        summary[f"{name}/{mode}_over_off_c32"] = summary[f"{name}/{mode}-c32"]["median"]["throughput_per_s"] / off
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
for key, value in summary.items():
    print(key, json.dumps(value["median"]) if isinstance(value, dict) else round(value, 2))
PY

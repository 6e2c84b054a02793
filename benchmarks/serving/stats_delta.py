"""Difference of two /v2/models/{m}/stats bodies: average server total, queue and compute per request (us)."""
import json
import sys


def totals(path):
    with open(path, encoding="utf-8") as f:
        body = json.load(f)
    sums = {}
    for model in body.get("model_stats", []):
        for key, entry in model.get("inference_stats", {}).items():
            count, ns = sums.get(key, (0, 0))
            sums[key] = (count + entry.get("count", 0), ns + entry.get("ns", 0))
        for key in ("execution_count", "inference_count"):
            sums[key] = (sums.get(key, (0, 0))[0] + model.get(key, 0), 0)
    return sums


before, after = totals(sys.argv[1]), totals(sys.argv[2])
out = {}
for key, (count, ns) in after.items():
    c0, n0 = before.get(key, (0, 0))
    dc, dn = count - c0, ns - n0
    out[key] = {"count": dc, "avg_us": dn / 1000 / dc if dc and dn else None}
success, infer = out.get("success", {}), out.get("compute_infer", {})
if success.get("avg_us") is not None and infer.get("avg_us") is not None:
    # The service's own time per request (input decode into tensors, routing, queue, output build) beyond the engine forward.
    out["server_minus_compute_avg_us"] = success["avg_us"] - infer["avg_us"]
json.dump(out, sys.stdout, indent=2)

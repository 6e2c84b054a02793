"""Flips a variant's sparsity through the admin API as fast as every INTERVAL seconds for SECONDS; prints JSON counts."""
import json
import sys
import time
import urllib.error
import urllib.request

admin, token, model, variant, seconds, interval = sys.argv[1:7]
seconds, interval = float(seconds), float(interval)
url = f"{admin}/admin/models/{model}/variants/{variant}"
statuses, latencies_ms = {}, []
sparsities = [0.9, 0.75]
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    started = time.monotonic()
    body = json.dumps({"pattern": "block-topk", "sparsity": sparsities[n % 2]}).encode()
    request = urllib.request.Request(url, data=body, method="PUT", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        status = type(e).__name__
    latencies_ms.append((time.monotonic() - started) * 1000)
    statuses[str(status)] = statuses.get(str(status), 0) + 1
    n += 1
    time.sleep(max(0.0, interval - (time.monotonic() - started)))
latencies_ms.sort()
json.dump({
    "changes_attempted": n,
    "statuses": statuses,
    "seconds": seconds,
    "target_interval_s": interval,
    "change_latency_ms": {
        "p50": latencies_ms[len(latencies_ms) // 2] if latencies_ms else None,
        "max": latencies_ms[-1] if latencies_ms else None,
    },
}, sys.stdout, indent=2)

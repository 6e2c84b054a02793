"""Builds a model repository of five models on one model's weights: unbatched, and batches of up to 32 or 8 windows
under the work-conserving policy (the default) and under Triton's delay policy."""
import json
import os
import sys

source, target = sys.argv[1], sys.argv[2]
with open(os.path.join(source, "serving.json"), encoding="utf-8") as f:
    manifest = json.load(f)

configs = {
    # Work-conserving (the default policy): a free worker sends what is queued at once, up to 32 windows per forward.
    # The overhead and swap parts use this model.
    "skab-pump": {"policy": "work_conserving", "max_batch_size": 32},
    # Work-conserving with the scheduler's default batch size (8).
    "skab-pump-batch8": {"policy": "work_conserving", "max_batch_size": 8},
    # Triton's delay policy: a partial batch waits up to 500 us for batch-mates; up to 32, or 8, windows per forward.
    "skab-pump-delay": {"policy": "delay", "max_batch_size": 32, "max_queue_delay_microseconds": 500},
    "skab-pump-delay8": {"policy": "delay", "max_batch_size": 8, "max_queue_delay_microseconds": 500},
    # Batching off: every request is its own forward (same queue and worker, no grouping).
    "skab-pump-unbatched": {"max_batch_size": 1},
}
for name, batching in configs.items():
    directory = os.path.join(target, name)
    os.makedirs(directory)
    for entry in os.listdir(source):
        path = os.path.join(source, entry)
        if os.path.isdir(path):
            os.symlink(path, os.path.join(directory, entry))
    with open(os.path.join(directory, "serving.json"), "w", encoding="utf-8") as f:
        json.dump(dict(manifest, batching=batching), f, indent=2)

"""Builds a model repository of three models on one model's weights: batching on (32 or 8 per forward) and off (max_batch_size 1)."""
import json
import os
import sys

source, target = sys.argv[1], sys.argv[2]
with open(os.path.join(source, "serving.json"), encoding="utf-8") as f:
    manifest = json.load(f)

configs = {
    # Batching on: up to 32 windows per forward, at most 500 us of waiting for a batch to fill.
    "skab-pump": {"max_batch_size": 32, "max_queue_delay_microseconds": 500},
    # Batching on with the scheduler's default batch size (8) and the same delay.
    "skab-pump-batch8": {"max_batch_size": 8, "max_queue_delay_microseconds": 500},
    # Batching off: every request is its own forward (same queue and worker, no grouping).
    "skab-pump-unbatched": {"max_batch_size": 1, "max_queue_delay_microseconds": 0},
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

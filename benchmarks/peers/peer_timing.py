"""The timing loop both CPU peers share: a short warm-up, then repeats until both a minimum count and a minimum time."""
import time


def time_repeatedly(fn, min_seconds, min_reps):
    """Returns (per-call wall seconds, process CPU seconds over all calls) after 0.2 s of warm-up
    (thread pool start, page faults, BLAS buffers)."""
    t_end = time.perf_counter() + 0.2
    while time.perf_counter() < t_end:
        fn()
    times = []
    start = time.perf_counter()
    cpu0 = time.process_time()
    while len(times) < min_reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times, time.process_time() - cpu0

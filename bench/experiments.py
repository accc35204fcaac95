"""Time and XLA compilations of experiments at the quick scale, in one process, one after
another: the first run of each (with its compilations), then warm runs, median and minimum.

    .venv/bin/python bench/experiments.py                           # all ten, no persistent cache
    .venv/bin/python bench/experiments.py lowest-loss --repeat 3
    .venv/bin/python bench/experiments.py --cache /tmp/jax-cache    # run twice: empty, then filled

Wall and CPU seconds (this process, all its threads): the machine is shared, so CPU seconds are
the steadier figure. Compilations: JAX's backend-compile events (a hit in the persistent cache
is not one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"  # one event per XLA compilation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="experiments (default: all)")
    parser.add_argument("--repeat", type=int, default=0, help="warm runs after the first")
    parser.add_argument("--cache", help="JAX's persistent compilation cache directory (default: none)")
    args = parser.parse_args()
    import jax

    from engine.experiments import EXPERIMENTS, run

    if args.cache:
        from engine.compilation import enable_compilation_cache

        enable_compilation_cache(args.cache)
    compiled = {"count": 0, "seconds": 0.0}

    def listen(event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE:
            compiled["count"] += 1
            compiled["seconds"] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    totals = [0.0, 0.0, 0]
    for name in args.names or list(EXPERIMENTS):
        walls, cpus, counts = [], [], []
        for _ in range(1 + args.repeat):
            compiled.update(count=0, seconds=0.0)
            start, cpu = time.perf_counter(), time.process_time()
            run(name, "quick")
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
            counts.append(compiled["count"])
        totals = [totals[0] + walls[0], totals[1] + cpus[0], totals[2] + counts[0]]
        line = f"{name}: first {walls[0]:.1f} s ({cpus[0]:.1f} CPU s, {counts[0]} XLA compilations)"
        if args.repeat:
            line += (f"; warm median {statistics.median(walls[1:]):.1f} s, min {min(walls[1:]):.1f} s "
                     f"({statistics.median(cpus[1:]):.1f} CPU s, {max(counts[1:])} compilations)")
        print(line + f"; load average now {os.getloadavg()[0]:.1f}", flush=True)
    print(f"first runs together: {totals[0]:.1f} s, {totals[1]:.1f} CPU s, {totals[2]} XLA compilations")


if __name__ == "__main__":
    main()

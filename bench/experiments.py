"""Wall time of experiments at the quick scale, in one process: the first run (with JAX's
compilations) and the warm runs after it, median and minimum.

    .venv/bin/python bench/experiments.py lowest-loss scalar-angle --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--repeat", type=int, default=3, help="warm runs after the first")
    args = parser.parse_args()
    from engine.experiments import run

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name in args.names:
        times = []
        for _ in range(1 + args.repeat):
            start = time.perf_counter()
            run(name, "quick")
            times.append(time.perf_counter() - start)
        warm = times[1:]
        print(f"{name}: first {times[0]:.1f} s; warm median {statistics.median(warm):.1f} s, min {min(warm):.1f} s "
              f"({len(warm)} runs); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

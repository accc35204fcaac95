"""Benchmark: bounded load on loopback, the service's throughput and latency under many clients.

    python bench/load.py                                  # cold and hits, 1 and 2 replicas, embedded default
    python bench/load.py --modes cold --jobs 400 --clients 32 --repeats 3
    python bench/load.py --modes hits --replicas 1 2 --store-url redis://127.0.0.1:6379/0

Modes: `cold` posts `--jobs` distinct small jobs (`--points` points on the unit circle, each job's
rotated by its own angle; ReLU ResNet depth `--depth`) to /v1/kernels; `hits` posts one request
`--jobs` times (every answer a cache hit). `--clients` concurrent clients (httpx, asyncio), each
request at most `--timeout` seconds; the bodies are serialised before the clock starts.

Each replica count in `--replicas` gets fresh processes and a fresh data directory. Without
`--store-url`: N `reskernel serve` processes on the embedded defaults sharing one data directory
(its SQLite store; each its own local Dask cluster of one worker). With `--store-url`: one
`dask scheduler`, `--dask-workers` `dask worker` processes and N `reskernel serve` processes
started as docker-compose.yml starts them (loopback addresses), sharing the store, the data
directory and the Dask cluster; the store's keys get a prefix of their own, deleted afterwards.
Requests go round-robin over the replicas. Before the clock: /readyz of every replica, then one
warm-up request per replica (compiling the kernel's shape; in `hits`, also storing the result).

Reported per run: jobs/s, latency p50 / p90 / p99, errors (anything but a 200 with the expected
X-Cache, or a transport error; the first ones are printed with the problems in the processes'
logs), and the CPU milliseconds per job of the API replicas, of the Dask processes (theirs, or
the ones started here) and of this load generator, from /proc: on a shared machine these move
less than the wall clock. "Above idle" subtracts what the idle service used (heartbeats,
monitors; measured after the warm-up) over the run's duration. With `--repeats R` each figure is
the median of R runs on the same service.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import ALPHA, SIGMA_W  # noqa: E402

READY_S = 180.0  # how long processes get to start
IDLE_CPU = 0.15  # CPU seconds per second below which the started service counts as idle
IDLE_WINDOW_S = 2.0  # measured over this long


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(n: int, depth: int, shift: float) -> bytes:
    """A /v1/kernels body as JSON bytes: n points on the unit circle rotated by `shift`."""
    b = 2 * np.pi * np.arange(n) / n - np.pi + shift
    x = np.stack([np.cos(b), np.sin(b)], 1)
    arch = {"kind": "resnet", "depth": depth, "alpha": ALPHA, "sigma_w": SIGMA_W}
    return httpx.Request("POST", "/", json={"x": x.tolist(), "architecture": arch}).content


def command(name: str) -> list[str]:
    """A console script of this venv (`reskernel`, `dask`), else by module path."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", {"reskernel": "service.cli", "dask": "distributed.cli.dask"}[name]]


@dataclass
class Service:
    """The processes of one configuration, their base URLs, and where their logs go."""

    data_dir: Path
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    idle: dict[str, float] = field(default_factory=lambda: {"api": 0.0, "dask": 0.0})  # CPU s per s, idle

    def spawn(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes.append(process)
        return process

    def stop(self) -> None:
        """SIGINT (a graceful shutdown), then SIGKILL the process group of whatever is left."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        for process in reversed(self.processes):
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log_problems(self, limit: int = 20) -> list[str]:
        """The first warnings, errors and tracebacks in the processes' logs."""
        found = []
        for path in sorted(self.log_dir.glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if any(word in line for word in ("WARNING", "ERROR", "Traceback", "Error")):
                    found.append(f"{path.stem}: {line[:300]}")
        return found[:limit]

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds so far of the API processes, and of the Dask processes (the
        scheduler, the workers and their nannies: the API's children, or started here)."""
        total = {"api": 0.0, "dask": 0.0}
        for process in self.processes:
            try:
                parent = psutil.Process(process.pid)
                tree = [(parent, "api" if "serve" in process.args else "dask")]
                tree += [(child, "dask") for child in parent.children(recursive=True)]
                for p, role in tree:
                    times = p.cpu_times()
                    total[role] += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total


def start(replicas: int, store_url: str | None, dask_workers: int, log_level: str, stack: ExitStack) -> Service:
    """Start one configuration and wait until every replica is ready."""
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reskernel-load-")))
    (root / "data").mkdir()
    (root / "logs").mkdir()
    service = Service(root / "data", root / "logs")
    stack.callback(service.stop)
    env = {**os.environ, "RESKERNEL_DATA_DIR": str(service.data_dir)}
    if store_url:
        prefix = f"reskernel-load-{uuid.uuid4().hex[:8]}"
        stack.callback(delete_keys, store_url, prefix)
        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        scheduler = service.spawn([*command("dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--dashboard-address", f"127.0.0.1:{free_port()}"], env, "scheduler")
        wait_for_port(port, scheduler)
        workers = env | {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}  # as the README advises
        for i in range(dask_workers):
            service.spawn([*command("dask"), "worker", address, "--nthreads", "1", "--memory-limit", "0",
                           "--no-dashboard"], workers, f"worker-{i}")
        env |= {"RESKERNEL_STORE_URL": store_url, "RESKERNEL_STORE_PREFIX": prefix, "RESKERNEL_DASK_ADDRESS": address}
    for i in range(replicas):
        port = free_port()
        service.spawn([*command("reskernel"), "serve", "--host", "127.0.0.1", "--port", str(port),
                       "--log-level", log_level], env, f"api-{i}")
        service.urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + READY_S
    for url in service.urls:
        while True:
            for process in service.processes:
                if process.poll() is not None:
                    tail = "\n".join(service.log_problems())
                    raise RuntimeError(f"{' '.join(process.args[1:3])} exited with {process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} was not ready within {READY_S:.0f} s")
            time.sleep(0.2)
    return service


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    """Until something listens on the loopback port (the process must not exit meanwhile)."""
    deadline = time.monotonic() + READY_S
    while process.poll() is None and time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on port {port} (exit code {process.poll()})")


def delete_keys(store_url: str, prefix: str) -> None:
    """Remove the benchmark's keys from the shared store (best effort)."""
    try:
        import redis
    except ImportError:
        return
    with redis.Redis.from_url(store_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])


@dataclass
class Run:
    seconds: float
    latencies: list[float]
    errors: list[str]
    cpu_s: dict[str, float]  # CPU seconds of the run: "api", "dask" (the service's), "client" (this process),
    # and "api_busy", "dask_busy": less what the idle service uses in as long (heartbeats, monitors)

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.latencies) or [float("nan")]

        def quantile(q: float) -> float:
            return ordered[min(int(q * len(ordered)), len(ordered) - 1)]

        done = len(self.latencies)
        return {"per_s": done / self.seconds, "p50_s": quantile(0.5), "p90_s": quantile(0.9),
                "p99_s": quantile(0.99), "errors": len(self.errors),
                **{f"{role}_cpu_ms": 1e3 * seconds / max(done, 1) for role, seconds in self.cpu_s.items()}}


async def load(urls: list[str], bodies: list[bytes], expect: str, clients: int, timeout: float) -> tuple[
        float, list[float], list[str]]:
    """Post every body once, round-robin over urls, from `clients` concurrent clients; the
    wall time, each successful request's latency, and a description of each failure."""
    latencies: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for i, content in enumerate(bodies):
        queue.put_nowait((i, content))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:

        async def client() -> None:
            while not queue.empty():
                i, content = queue.get_nowait()
                url = f"{urls[i % len(urls)]}/v1/kernels"
                begin = time.perf_counter()
                try:
                    response = await http.post(url, content=content, headers=headers)
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - begin
                if response.status_code != 200 or response.headers.get("x-cache") != expect:
                    errors.append(f"{response.status_code} X-Cache {response.headers.get('x-cache')}: "
                                  f"{response.text[:200]}")
                else:
                    latencies.append(elapsed)

        begin = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - begin, latencies, errors


def measure(service: Service, mode: str, args, repeat: int) -> Run:
    """One bounded run of `mode` against a started service."""
    if mode == "cold":  # distinct rotations, none used before (repeat r uses its own range)
        shifts = 1e-3 + (repeat * args.jobs + np.arange(args.jobs)) * 1e-6
        bodies = [body(args.points, args.depth, s) for s in shifts]
    else:
        bodies = [body(args.points, args.depth, 0.5)] * args.jobs
    before, client = service.cpu_seconds(), time.process_time()
    seconds, latencies, errors = asyncio.run(load(service.urls, bodies, "miss" if mode == "cold" else "hit",
                                                  args.clients, args.timeout))
    cpu = {role: used - before[role] for role, used in service.cpu_seconds().items()}
    cpu |= {f"{role}_busy": max(cpu[role] - service.idle[role] * seconds, 0.0) for role in service.idle}
    return Run(seconds, latencies, errors, cpu | {"client": time.process_time() - client})


def warm(service: Service, args) -> None:
    """One request per replica on points no run uses (compiling the shape, storing the hits'
    result), then wait until the service is idle: the workers' background warm-up (compiling
    other kernel families) must not run during a measurement."""
    with httpx.Client(timeout=READY_S) as http:
        for i, url in enumerate(service.urls):
            for content in (body(args.points, args.depth, -1.0 - i), body(args.points, args.depth, 0.5)):
                response = http.post(f"{url}/v1/kernels", content=content,
                                     headers={"Content-Type": "application/json"})
                response.raise_for_status()
    deadline, used = time.monotonic() + READY_S, service.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(IDLE_WINDOW_S)
        now = service.cpu_seconds()
        if sum(now.values()) - sum(used.values()) < IDLE_CPU * IDLE_WINDOW_S:
            service.idle = {role: (now[role] - used[role]) / IDLE_WINDOW_S for role in now}
            return
        used = now
    print(f"warning: the service still used CPU {READY_S:.0f} s after its warm-up", file=sys.stderr)


def median(runs: list[Run]) -> dict[str, float]:
    figures = [r.figures() for r in runs]
    return {name: statistics.median(f[name] for f in figures) for name in figures[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=["cold", "hits"], default=["cold", "hits"])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2], help="API processes (each a run)")
    parser.add_argument("--store-url", help="a shared store (redis://...); default the embedded SQLite store")
    parser.add_argument("--dask-workers", type=int, default=2, help="`dask worker` processes (with --store-url)")
    parser.add_argument("--jobs", type=int, default=400, help="requests per run")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--points", type=int, default=32, help="points per job")
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (medians)")
    parser.add_argument("--log-level", default="info", help="uvicorn's log level (info: access logs, the default)")
    args = parser.parse_args()

    store = args.store_url or "embedded SQLite"
    print(f"# reskernel load benchmark: {args.jobs} requests, {args.clients} clients, {args.points} points, "
          f"depth {args.depth}, store {store}, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}, medians of {args.repeats} runs")
    print("\n| mode | replicas | jobs/s | p50 s | p90 s | p99 s | errors | CPU ms/job: API, Dask, client |"
          " above idle: API, Dask |")
    print("|---|---|---|---|---|---|---|---|---|")
    results: dict[tuple[str, int], dict[str, float]] = {}
    failures: list[str] = []
    for replicas in args.replicas:
        with ExitStack() as stack:
            service = start(replicas, args.store_url, args.dask_workers, args.log_level, stack)
            warm(service, args)
            for mode in args.modes:
                runs = [measure(service, mode, args, r) for r in range(args.repeats)]
                failures += [e for r in runs for e in r.errors[:3]]
                if any(r.errors for r in runs):
                    failures += service.log_problems()
                f = results[mode, replicas] = median(runs)
                print(f"| {mode} | {replicas} | {f['per_s']:.1f} | {f['p50_s']:.3f} | {f['p90_s']:.3f} | "
                      f"{f['p99_s']:.3f} | {f['errors']:.0f} | {f['api_cpu_ms']:.1f}, {f['dask_cpu_ms']:.1f}, "
                      f"{f['client_cpu_ms']:.1f} | {f['api_busy_cpu_ms']:.1f}, {f['dask_busy_cpu_ms']:.1f} |",
                      flush=True)
    for mode in args.modes:
        if (mode, 1) in results and (mode, 2) in results:
            print(f"\n{mode}: two replicas / one = {results[mode, 2]['per_s'] / results[mode, 1]['per_s']:.2f}x "
                  "the requests per second")
    for failure in failures[:30]:
        print(f"error: {failure}")


if __name__ == "__main__":
    main()

"""The `reskernel` command: `serve` runs the service on the embedded defaults, `reproduce` the
paper's experiments; `kernels` and `smoothness` compute against a running service (`--url`) or
in this process, drawing progress and tables with rich."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.experiments import EXPERIMENTS
from service.logs import configure as configure_logs
from service.settings import Settings

EXPERIMENT_NAMES = list(EXPERIMENTS)
console = Console(stderr=True)
KERNELS_EXAMPLE = """example:
  reskernel kernels --x '[[1, 0], [0, 1], [0.6, 0.8]]' --arch resnet,depth=5,alpha=0.1
  reskernel kernels --x points.npy --arch mlp,depth=3 --kernel ntk --out ntk.npy --url http://127.0.0.1:8000"""
SMOOTHNESS_EXAMPLE = """example:
  reskernel smoothness --arch mlp,depth=5 --arch resnet,depth=5,alpha=1 --arch resnet,depth=5,alpha=0.1
  reskernel smoothness --n-train 10 --targets '[0, 1, 0, -1, 0, 1, 0, -1, 0, 1]' --out interpolants.npy"""


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from service.http.app import create_app
    from service.http.server import server_config

    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("workers", args.workers),
                                   ("dask_address", args.dask_address)) if v is not None}
    try:
        settings = replace(Settings.from_env(), **overrides)
    except ValueError as exc:
        raise SystemExit(f"reskernel serve: {exc}") from None
    if not (settings.api_token or settings.allow_open or _is_loopback(args.host)):
        raise SystemExit(f"reskernel serve: --host {args.host} is reachable from other machines and no "
                         "RESKERNEL_API_TOKEN (or RESKERNEL_API_TOKEN_FILE) is set: anyone who reaches it could "
                         "run jobs. Set a token, or RESKERNEL_ALLOW_OPEN=1 to serve it open on purpose.")
    # every logger's lines (uvicorn's too: log_config=None) in RESKERNEL_LOG_FORMAT; "trace" is uvicorn's level 5
    configure_logs(settings.log_format, 5 if args.log_level == "trace" else args.log_level.upper())
    logging.getLogger("reskernel").info("data directory %s", settings.data_dir)
    uvicorn.Server(server_config(create_app(settings), settings, args.host, args.port, args.log_level)).run()


def _is_loopback(host: str) -> bool:
    """Whether `--host` listens on loopback only ("localhost", 127.0.0.0/8, ::1)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reproduce(args: argparse.Namespace) -> None:
    from engine.compilation import enable_compilation_cache
    from report.reproduce import reproduce as run

    enable_compilation_cache()  # ~/.cache/reskernel/jax: a second run compiles nothing

    overrides: dict[str, dict[str, Any]] = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        name, _, param = key.partition(".")
        if not param or not value:
            raise SystemExit(f"--set takes EXPERIMENT.PARAMETER=JSON, got {item!r}")
        try:
            overrides.setdefault(name, {})[param] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--set {key}: {value!r} is not JSON ({exc})") from None
    try:
        report, failed = run(args.names, Path(args.out), args.scale, overrides, jobs=args.jobs)
    except ValueError as exc:
        raise SystemExit(f"reskernel reproduce: {exc}") from None
    print(f"report: {report}")
    if failed:
        raise SystemExit(f"reskernel reproduce: failed: {', '.join(failed)} (see the report)")


def architecture(text: str) -> dict[str, Any]:
    """'resnet,depth=5,alpha=0.1' -> {"kind": "resnet", "depth": 5, "alpha": 0.1} (values as JSON, else text)."""
    kind, *pairs = text.split(",")
    arch: dict[str, Any] = {"kind": kind.strip()}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected KIND,KEY=VALUE,..., got {pair!r} in {text!r}")
        try:
            arch[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            arch[key.strip()] = value.strip()
    return arch


def points(text: str) -> list[Any]:
    """Points from a .npy file, a CSV file, or a JSON array."""
    path = Path(text)
    if path.suffix == ".npy" and path.exists():
        return np.load(path).tolist()
    if path.suffix in (".csv", ".txt") and path.exists():
        return np.loadtxt(path, delimiter=",", ndmin=2).tolist()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a .npy / .csv file nor a JSON array") from None


def compute(operation: str, body: dict[str, Any], url: str | None) -> dict[str, Any]:
    """The operation's result (values and numpy arrays), from the service at `url` or, without
    one, computed here by the worker's own code; progress drawn by rich."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[message]}"), console=console, transient=True) as bar:
        task = bar.add_task(operation, total=1.0, message="")

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, message=message)

        if url:
            from service.client import Client, ProblemError

            try:
                with Client(url) as rk:
                    return rk.run(operation, body, progress=progress)
            except ProblemError as exc:
                raise SystemExit(f"reskernel {operation}: {_problem_text(exc.problem)}") from None
        return _in_process(operation, body, progress)


def _problem_text(problem: dict[str, Any]) -> str:
    fields = "; ".join(f"{e['field']}: {e['message']}" for e in problem.get("errors") or [])
    return f"{problem.get('status')} {problem.get('title')}: {fields or problem.get('detail')}"


class _Report:
    """The worker's progress reporter, in this process: progress only, never cancelled."""

    def __init__(self, progress: Callable[[float, str], None]):
        self.progress = progress

    def __call__(self, fraction: float, message: str) -> None:
        self.progress(fraction, message)

    def should_stop(self) -> bool:
        return False


def _in_process(operation: str, body: dict[str, Any], progress: Callable[[float, str], None]) -> dict[str, Any]:
    from pydantic import ValidationError

    from service.http.bodies import validation_problem
    from service.jobs.ids import split_request
    from service.operations.registry import REQUESTS, RUNS

    try:
        request = REQUESTS[operation].model_validate(body)
    except ValidationError as exc:
        problem = validation_problem(exc)
        raise SystemExit(f"reskernel {operation}: " + _problem_text({"status": problem.status, "title": problem.title,
                                                                      "errors": problem.errors})) from None
    params, inputs = split_request(request)
    with tempfile.TemporaryDirectory() as folder:
        try:
            values, arrays = RUNS[operation](params, inputs, Path(folder), _Report(progress))
        except ValueError as exc:
            raise SystemExit(f"reskernel {operation}: {exc}") from None
        written = {p.stem: np.load(p) for p in Path(folder).glob("*.npy")}
    return values | written | arrays


def save(out: Path, arrays: dict[str, np.ndarray], main: str) -> None:
    """`out.npy`: the `main` array; `out.npz`: all of them."""
    if out.suffix == ".npz":
        np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle
    elif out.suffix == ".npy":
        np.save(out, arrays[main])
    else:
        raise SystemExit(f"--out must end in .npy or .npz, got {out}")
    console.print(f"wrote {out}")


def kernels(args: argparse.Namespace) -> None:
    body = {"x": args.x, "x2": args.x2, "architecture": args.arch, "kernels": args.kernel or ["nngp", "ntk"]}
    result = compute("kernels", body, args.url)
    grams = {name: np.asarray(result[name]) for name in body["kernels"]}
    if args.out:
        save(args.out, grams, body["kernels"][-1])
    for name, gram in grams.items():
        table = Table(title=f"{name.upper()} {gram.shape[0]} x {gram.shape[1]}"
                      + (" (first 8 x 8)" if max(gram.shape) > 8 else ""))
        for j in range(min(gram.shape[1], 8)):
            table.add_column(str(j), justify="right")
        for row in gram[:8, :8]:
            table.add_row(*(f"{v:.6g}" for v in row))
        Console().print(table)


def smoothness(args: argparse.Namespace) -> None:
    archs = args.arch or [{"kind": "mlp", "depth": 5}, {"kind": "resnet", "depth": 5, "alpha": 1.0},
                          {"kind": "resnet", "depth": 5, "alpha": 0.1}]
    body = {"architectures": archs, "n_train": args.n_train, "n_grid": args.n_grid, "targets": args.targets}
    result = compute("smoothness", body, args.url)
    if args.out:
        save(args.out, {name: np.asarray(result[name]) for name in
                        ("interpolants", "angles", "train_angles", "train_values")}
             | {"mu": np.array([r["mu"] for r in result["results"]])}, "interpolants")
    table = Table(title=f"mu (eq. 22) of the NTK interpolant of {args.n_train} samples, on {args.n_grid} points")
    for column in ("kind", "depth", "alpha", "activation", "mu"):
        table.add_column(column, justify="left" if column in ("kind", "activation") else "right")
    for r in result["results"]:
        a = r["architecture"]
        table.add_row(a["kind"], str(a["depth"]), "-" if a["kind"] == "mlp" else f"{a['alpha']:g}", a["activation"],
                      f"{r['mu']:.6g}")
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reskernel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the HTTP service (docs at /docs)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--data-dir", type=Path, help="job store (default: $RESKERNEL_DATA_DIR or "
                     "~/.local/share/reskernel)")
    run.add_argument("--workers", type=int, help="local Dask worker processes (default 1)")
    run.add_argument("--dask-address", help="use this Dask scheduler instead of a local cluster")
    run.add_argument("--log-level", default="info")
    run.set_defaults(func=serve)
    again = commands.add_parser("reproduce", help="run the paper's experiments: figures, data and report.md")
    again.add_argument("names", nargs="*", help="experiments (default: all): " + ", ".join(EXPERIMENT_NAMES))
    again.add_argument("--out", default="reproduction", help="output folder (default ./reproduction)")
    again.add_argument("--scale", choices=["quick", "paper"], default="quick")
    again.add_argument("--set", action="append", metavar="EXPERIMENT.PARAMETER=JSON",
                       help="override a parameter, e.g. --set interpolation.depths=[5]")
    again.add_argument("--jobs", type=int, default=2, help="experiments run at once, each in its own process "
                       "(default 2; 1: one after another)")
    again.set_defaults(func=reproduce)
    url: dict[str, Any] = {"help": "a running service (e.g. http://127.0.0.1:8000); default: compute in this process"}
    arch_help = "KIND,KEY=VALUE,...: kind resnet or mlp, keys depth, alpha, activation, sigma_w, sigma_v, sigma_b"
    grams = commands.add_parser("kernels", help="analytic NNGP / NTK Gram matrices", epilog=KERNELS_EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    grams.add_argument("--x", type=points, required=True, help="points (N, d): a .npy or .csv file, or a JSON array")
    grams.add_argument("--x2", type=points, help="second point set (default: x)")
    grams.add_argument("--arch", type=architecture, required=True, help=arch_help)
    grams.add_argument("--kernel", action="append", choices=["nngp", "ntk"], help="repeatable (default: both)")
    grams.add_argument("--out", type=Path, help="file.npy (the last kernel) or file.npz (all)")
    grams.add_argument("--url", **url)
    grams.set_defaults(func=kernels)
    smooth = commands.add_parser("smoothness", help="the paper's circle experiment: interpolants and their mu",
                                 epilog=SMOOTHNESS_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    smooth.add_argument("--arch", type=architecture, action="append",
                        help=arch_help + " (repeatable; default: MLP, ResNets alpha 1 and 0.1, depth 5)")
    smooth.add_argument("--n-train", type=int, default=6, help="equispaced samples on the circle (default 6)")
    smooth.add_argument("--targets", type=json.loads, help="JSON values at the samples (default 0.5 cos b + sin 4b)")
    smooth.add_argument("--n-grid", type=int, default=4096, help="grid on which mu is measured (default 4096)")
    smooth.add_argument("--out", type=Path, help="file.npy (interpolants, one row per architecture) or file.npz "
                        "(interpolants, angles, train_angles, train_values, mu)")
    smooth.add_argument("--url", **url)
    smooth.set_defaults(func=smoothness)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

"""The `reskernel` command: `reskernel serve` runs the service on the embedded defaults."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from engine.experiments import EXPERIMENTS
from service.settings import Settings

EXPERIMENT_NAMES = list(EXPERIMENTS)


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from service.app import create_app

    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("workers", args.workers),
                                   ("dask_address", args.dask_address)) if v is not None}
    settings = replace(Settings.from_env(), **overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("reskernel").info("data directory %s", settings.data_dir)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)


def reproduce(args: argparse.Namespace) -> None:
    from engine.compilation import enable_compilation_cache
    from report.reproduce import reproduce as run

    enable_compilation_cache()  # ~/.cache/reskernel/jax: a second run compiles nothing

    overrides: dict[str, dict] = {}
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
        report, failed = run(args.names, Path(args.out), args.scale, overrides)
    except ValueError as exc:
        raise SystemExit(f"reskernel reproduce: {exc}") from None
    print(f"report: {report}")
    if failed:
        raise SystemExit(f"reskernel reproduce: failed: {', '.join(failed)} (see the report)")


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
    again.set_defaults(func=reproduce)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())

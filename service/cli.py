"""The `reskernel` command: `reskernel serve` runs the service on the embedded defaults."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from service.settings import Settings


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from service.app import create_app

    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("workers", args.workers),
                                   ("dask_address", args.dask_address)) if v is not None}
    settings = replace(Settings.from_env(), **overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("reskernel").info("data directory %s", settings.data_dir)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)


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
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""The service's settings: environment variables with embedded defaults (no server needed).

Every variable is optional: RESKERNEL_DATA_DIR, RESKERNEL_DASK_ADDRESS, RESKERNEL_WORKERS,
RESKERNEL_WAIT_S, RESKERNEL_CACHE_BYTES, RESKERNEL_MAX_ATTEMPTS, RESKERNEL_CANCEL_GRACE_S,
RESKERNEL_EVENT_STREAM_S, RESKERNEL_DASHBOARD_ADDRESS, RESKERNEL_STORE_URL (unset: SQLite in the data
directory; redis://host:port/db: a Redis store shared by API replicas), RESKERNEL_STORE_PREFIX,
RESKERNEL_LEASE_S, RESKERNEL_TRUSTED_HOSTS (comma-separated; "*" allows any Host), RESKERNEL_WARM_UP
(0 turns the workers' warm-up off), RESKERNEL_API_TOKEN (bearer-token auth), RESKERNEL_CORS_ORIGINS
(comma-separated), RESKERNEL_LOG_FORMAT (json or text), RESKERNEL_HEADER_TIMEOUT_S, RESKERNEL_ALLOW_OPEN,
RESKERNEL_DISTRIBUTE_ENTRIES and RESKERNEL_TILE_EDGE (one Gram matrix across the workers),
the limits RESKERNEL_MAX_<NAME> for each field of `Limits` (e.g. RESKERNEL_MAX_POINTS=50000), and
RESKERNEL_STORE_PASSWORD (the Redis store's password); RESKERNEL_API_TOKEN, RESKERNEL_STORE_URL and
RESKERNEL_STORE_PASSWORD may instead be read from the file RESKERNEL_<NAME>_FILE names (a secret).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Limits:
    """Admission limits. Requests beyond them get 413 (size) or 422 (parameters)."""

    points: int = 20_000          # rows of all point arrays of one request together
    quadrature_points: int = 1024  # the same where tanh, softplus, sigmoid take the quadrature
    dimension: int = 4096         # input dimension d
    depth: int = 1000             # L
    width_depth: int = 200_000    # width x depth of finite networks
    n_init: int = 64              # initialisations of one request
    steps: int = 100_000          # training steps
    grid: int = 65_536            # circle grid points
    architectures: int = 64       # architectures in one smoothness request
    body_bytes: int = 256 * 2**20  # request body
    parse_bytes: int = 256 * 2**20  # request bodies being parsed at once (a parse holds about twice its body)
    queue: int = 256              # jobs queued or running at once
    json_elements: int = 4_000_000  # numbers in a JSON result; larger results are binary only
    event_streams: int = 64       # Server-Sent Events connections open at once
    # budgets on a request's estimated cost (`service.operations`): 413 for sizes, 422 for time
    output_bytes: int = 4 * 2**30   # the arrays of one result
    memory_bytes: int = 8 * 2**30   # peak memory of the worker running it
    compute_seconds: int = 3600     # its compute time on this machine (2 cores)


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off")


def _log_format(value: str) -> str:
    value = value.strip().lower()
    if value not in ("json", "text"):
        raise ValueError(f"RESKERNEL_LOG_FORMAT must be json or text, got {value!r}")
    return value


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """RESKERNEL_<NAME>, or the content of the file RESKERNEL_<NAME>_FILE names (compose's and Kubernetes'
    secrets: a password never in the environment or a command line); None if neither is set."""
    variable = f"RESKERNEL_{name.upper()}"
    path = env.get(f"{variable}_FILE")
    if not path:
        return env.get(variable) or None
    if env.get(variable):
        raise ValueError(f"set {variable} or {variable}_FILE, not both")
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"{variable}_FILE: cannot read {path} ({exc.strerror})") from None
    if not value:
        raise ValueError(f"{variable}_FILE: {path} is empty")
    return value


def _with_password(url: str | None, password: str) -> str:
    """redis://host:port/db with RESKERNEL_STORE_PASSWORD: redis://:password@host:port/db."""
    scheme, separator, rest = (url or "").partition("://")
    if scheme not in ("redis", "rediss") or not separator:
        raise ValueError(f"RESKERNEL_STORE_PASSWORD needs a redis:// RESKERNEL_STORE_URL, got {url!r}")
    if "@" in rest.split("/", 1)[0]:
        raise ValueError("RESKERNEL_STORE_URL already holds credentials: drop them or RESKERNEL_STORE_PASSWORD")
    return f"{scheme}://:{quote(password, safe='')}@{rest}"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "reskernel"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    dask_address: str | None = None   # None: start a LocalCluster of `workers` processes
    workers: int = 1
    wait_s: float = 30.0              # how long a POST waits for its result by default
    max_wait_s: float = 300.0         # the most `Prefer: wait=N` may ask
    cache_bytes: int = 8 * 2**30      # results kept on disk (LRU beyond)
    max_attempts: int = 3             # runs of one job (worker or service deaths) before it fails
    cancel_grace_s: float = 10.0      # a cancelled job still running this long after has its worker restarted
    event_stream_s: float = 600.0     # an event stream ends after this long (the client reconnects)
    dashboard_address: str | None = None  # the local cluster's HTTP endpoints: None = a free loopback port
    trusted_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")  # Host headers served (DNS rebinding)
    warm_up: bool = True              # workers compile the common kernel families at start, in the background
    store_url: str | None = field(default=None, repr=False)  # None: SQLite in data_dir; "redis://...": Redis
    store_prefix: str = "reskernel"   # the Redis store's key prefix
    lease_s: float = 30.0             # a job whose replica or worker stops renewing this long is re-queued
    api_token: str | None = field(default=None, repr=False)  # None: no auth; else every route but a few needs it
    cors_origins: tuple[str, ...] = ()  # browser origins allowed cross-origin requests (CORS); () = CORS off
    log_format: str = "json"          # `reskernel serve`'s log lines: "json" (one object per line) or "text"
    header_timeout_s: float = 10.0    # a connection whose request line and headers take longer is closed (408)
    allow_open: bool = False          # `reskernel serve` on a non-loopback address without a token: refused unless set
    distribute_entries: int = 16_777_216  # a Gram matrix of this many entries or more: split across the workers
    tile_edge: int = 2048             # the rows and columns of one tile task (and Zarr chunk) of a split matrix
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        limits = Limits(**{f.name: int(env[f"RESKERNEL_MAX_{f.name.upper()}"]) for f in fields(Limits)
                           if f"RESKERNEL_MAX_{f.name.upper()}" in env})
        settings = cls(limits=limits)
        read: dict[str, Callable[[str], Any]] = {"data_dir": Path, "dask_address": str, "workers": int, "wait_s": float,
                "cache_bytes": int, "max_attempts": int, "cancel_grace_s": float, "event_stream_s": float,
                "dashboard_address": str, "trusted_hosts": _names, "warm_up": _flag,
                "store_prefix": str, "lease_s": float, "cors_origins": _names,
                "log_format": _log_format, "header_timeout_s": float, "allow_open": _flag,
                "distribute_entries": int, "tile_edge": int}
        values = {name: kind(env[f"RESKERNEL_{name.upper()}"]) for name, kind in read.items()
                  if env.get(f"RESKERNEL_{name.upper()}")}
        for name in ("api_token", "store_url"):
            if (secret := _secret(env, name)) is not None:
                values[name] = secret
        if (password := _secret(env, "store_password")) is not None:
            values["store_url"] = _with_password(values.get("store_url") or settings.store_url, password)
        return replace(settings, **values, **overrides)

    @classmethod
    def variables(cls) -> list[str]:
        """Every environment variable `from_env` reads, in the order it reads them: learnt by running
        `from_env` on an empty environment that notes each name looked up (so it cannot drift from it)."""
        environ = _NotingEnviron()
        cls.from_env(environ)
        return list(dict.fromkeys(environ.names))


class _NotingEnviron(dict[str, str]):
    """An empty environment that notes every name looked up in it (`in`, `get`, `[]`)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __contains__(self, name: object) -> bool:
        self.names.append(str(name))
        return False

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.names.append(name)
        return default

    def __getitem__(self, name: str) -> str:
        self.names.append(name)
        raise KeyError(name)

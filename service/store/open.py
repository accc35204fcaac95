"""`open_store`: the store a URL names."""

from __future__ import annotations

from pathlib import Path

from service.store.protocol import Store
from service.store.sqlite import SQLiteStore


def open_store(data_dir: str | Path, url: str | None = None, prefix: str = "reskernel") -> Store:
    """The store a URL names: None or "" = SQLite in data_dir; redis://host:port/db = Redis
    (records) with the files still in data_dir (a volume every API process and worker shares)."""
    if not url:
        return SQLiteStore(data_dir)
    if url.split("://", 1)[0] in ("redis", "rediss", "unix"):
        from service.store.redis import RedisStore

        return RedisStore(data_dir, url, prefix)
    raise ValueError(f"RESKERNEL_STORE_URL must be empty (SQLite) or a redis:// URL, got {url!r}")

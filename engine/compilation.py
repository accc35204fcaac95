"""JAX's persistent compilation cache, for entry points to turn on (importing the engine
changes no global setting): a restarted process loads what it compiled before instead of
compiling again."""

from __future__ import annotations

import os
from pathlib import Path

import jax


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/reskernel/jax, else ~/.cache/reskernel/jax."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reskernel" / "jax"


def enable_compilation_cache(directory: str | Path | None = None) -> Path:
    """Store every compiled function under `directory` (default `default_cache_dir()`) and
    reuse it across processes. Returns the directory. Call it before the first computation."""
    path = Path(directory) if directory is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    # the engine's compilations take 0.1-10 s: keep them all, however quick
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path

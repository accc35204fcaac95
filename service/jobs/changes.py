"""Job changes pushed to the event streams of this process: one listener on the store (Redis
pub/sub, or SQLite's data_version; see `Store.listen`) for every stream, started with the first
one, waking the streams whose job changed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.store.protocol import Store


class Changes:
    """`watch(job_id)` gives an asyncio.Event set whenever the job may have changed: when the
    store's listener sees a change, or when this process says so (`notify`)."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._watchers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._stop: Callable[[], None] | None = None

    def _watched(self) -> set[str]:
        with self._lock:
            return set(self._watchers)

    def notify(self, job_id: str | None) -> None:
        """From any thread: wake the watchers of job_id (all of them for None)."""
        with self._lock:
            woken = [w for key, ws in self._watchers.items() if job_id is None or key == job_id for w in ws]
        for loop, event in woken:
            loop.call_soon_threadsafe(event.set)

    @contextmanager
    def watch(self, job_id: str, listen: bool = True) -> Iterator[asyncio.Event]:
        """With `listen`, the store's listener is started (once) to push its changes; without,
        only `notify` wakes the event."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if listen and self._stop is None:
                self._stop = self.store.listen(self.notify, self._watched)
            self._watchers.setdefault(job_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                watchers = self._watchers.get(job_id, set())
                watchers.discard(entry)
                if not watchers:
                    self._watchers.pop(job_id, None)

    def close(self) -> None:
        with self._lock:
            if self._stop is not None:
                self._stop()
                self._stop = None

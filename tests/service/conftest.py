"""One Dask cluster and one job service for the service tests, served in-process (ASGI)
and by a real uvicorn on 127.0.0.1, port 0."""

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from service.http.app import create_app
from service.jobs.executor import Executor
from service.jobs.lifecycle import Jobs
from service.settings import Limits, Settings
from service.store.sqlite import SQLiteStore

LIMITS = Limits(points=3000, body_bytes=2 * 2**20, json_elements=50_000, depth=200, steps=500_000)


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    return Settings(data_dir=tmp_path_factory.mktemp("store"), workers=1, wait_s=60, limits=LIMITS,
                    trusted_hosts=("reskernel", "127.0.0.1"), cancel_grace_s=3)


@pytest.fixture(scope="session")
def jobs(settings):
    service = Jobs(settings, SQLiteStore(settings.data_dir), Executor(settings))
    service.start()
    yield service
    service.close()


@pytest.fixture(scope="session")
def app(settings, jobs):
    return create_app(settings, jobs)


@pytest.fixture
async def api(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel") as client:
        yield client


@contextlib.contextmanager
def running(config: uvicorn.Config) -> Iterator[str]:
    """A real uvicorn of `config` (port 0: a free one) in a thread; its base URL while the block runs."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def serving():
    """`running`, for test modules that start a uvicorn of their own configuration."""
    return running


@pytest.fixture(scope="session")
def server(app):
    """Base URL of a real uvicorn serving the shared app on a free port."""
    with running(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")) as url:
        yield url


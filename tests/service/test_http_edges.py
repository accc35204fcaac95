"""Issue 19's HTTP findings: Host parsing, the token compared whole, HEAD on every GET route, a deadline
and a size limit on a request's head (a service without nginx in front), `reskernel serve` refusing to
listen open beyond loopback, and settings read from secret files."""

import socket
import time
from dataclasses import replace

import anyio
import httpx
import pytest
import redis
import uvicorn

from service import cli
from service.http.app import create_app
from service.http.server import HEAD_BYTES, server_config
from service.settings import Settings

PROBLEM = "application/problem+json"
TOKEN = "s3cret-token"


def client(app, host: str = "reskernel") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


def exchange(base_url: str, raw: bytes, timeout: float = 10) -> bytes:
    """Send `raw` on a fresh connection to `base_url`; everything the server sends until it closes."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["localhost:80@evil.example", "[::1]evil.example", "reskernel.evil.example",
                                  "127.0.0.1.evil.example", "evil.example#reskernel", "reskernel:", "::1", ""])
async def test_a_host_is_trusted_only_when_it_is_well_formed_and_listed(app, host):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel",
                                 headers={"Host": host}) as api:
        response = await api.get("/healthz")
    assert response.status_code == 400 and response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "Host"


def test_two_host_headers_are_refused(server):
    trusted = "Host: 127.0.0.1\r\n"
    one = exchange(server, f"GET /healthz HTTP/1.1\r\n{trusted}Connection: close\r\n\r\n".encode())
    two = exchange(server, f"GET /healthz HTTP/1.1\r\n{trusted}{trusted}Connection: close\r\n\r\n".encode())
    assert one.startswith(b"HTTP/1.1 200")
    assert two.startswith(b"HTTP/1.1 400") and b"more than one Host header" in two


@pytest.mark.anyio
async def test_the_token_is_compared_whole(settings, jobs):
    app = create_app(replace(settings, api_token=TOKEN), jobs)
    async with client(app) as api:
        answers = {credentials: (await api.get("/v1/jobs", headers={"Authorization": f"Bearer {credentials}"}))
                   .status_code for credentials in (TOKEN, TOKEN + "x", TOKEN[:-1], TOKEN[1:], TOKEN.upper(), "")}
    assert answers == {TOKEN: 200, TOKEN + "x": 401, TOKEN[:-1]: 401, TOKEN[1:]: 401, TOKEN.upper(): 401, "": 401}


@pytest.mark.anyio
async def test_head_answers_every_get_route_with_the_get_head(api, jobs):
    deadline = time.monotonic() + 120  # an earlier test may have restarted the worker: /readyz is 503 until it is back
    while jobs.executor.workers() == 0:
        assert time.monotonic() < deadline, "no Dask worker came back"
        await anyio.sleep(0.2)
    paths = ["/healthz", "/readyz", "/v1/jobs", "/v1/info", "/openapi.json", "/", "/explorer/api.js", "/docs"]
    for path in paths:
        got, head = await api.get(path), await api.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers.get("content-length") == got.headers.get("content-length"), path
    missing = await api.head("/v1/jobs/" + "0" * 64)
    assert missing.status_code == 404 and missing.content == b""
    post_only = await api.head("/v1/kernels")
    assert post_only.status_code == 405 and post_only.headers["allow"] == "POST"
    put = await api.put("/v1/jobs/" + "0" * 64)  # Allow names every method of the path (RFC 9110 15.5.6)
    assert put.status_code == 405 and put.headers["allow"] == "DELETE, GET, HEAD"


@pytest.fixture(scope="module")
def strict_server(app, settings, serving):
    """A real uvicorn as `reskernel serve` configures it, with a short head deadline."""
    with serving(server_config(app, replace(settings, header_timeout_s=1.0), "127.0.0.1", 0, "warning")) as url:
        yield url


@pytest.mark.parametrize("raw", [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"], ids=["silent", "half-sent"])
def test_a_request_head_has_a_deadline(strict_server, raw):
    started = time.monotonic()
    answer = exchange(strict_server, raw)
    assert answer.startswith(b"HTTP/1.1 408") and b"RESKERNEL_HEADER_TIMEOUT_S" in answer
    assert time.monotonic() - started < 8  # closed by the deadline (1 s), not by the client's 10 s timeout


def test_a_slow_but_timely_request_is_served_and_keeps_its_connection(strict_server):
    host, port = strict_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for _ in range(3):  # three requests on one connection, each head sent in two parts
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            time.sleep(0.3)
            sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
            time.sleep(0.9)  # the deadline (1 s) counts per request, not per connection
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_request_head_has_a_size_limit(strict_server):
    raw = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"a" * HEAD_BYTES + b"\r\n\r\n"
    assert exchange(strict_server, raw).startswith(b"HTTP/1.1 431")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.org"])
def test_serve_refuses_to_listen_open_beyond_loopback(monkeypatch, host):
    for name in ("RESKERNEL_API_TOKEN", "RESKERNEL_API_TOKEN_FILE", "RESKERNEL_ALLOW_OPEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: pytest.fail("the server started"))
    with pytest.raises(SystemExit, match="RESKERNEL_ALLOW_OPEN=1"):
        cli.main(["serve", "--host", host])


@pytest.mark.parametrize(("host", "environment"), [("127.0.0.1", {}), ("::1", {}), ("localhost", {}),
                                                   ("0.0.0.0", {"RESKERNEL_API_TOKEN": TOKEN}),
                                                   ("0.0.0.0", {"RESKERNEL_ALLOW_OPEN": "1"})])
def test_serve_listens_on_loopback_or_with_a_token_or_when_told(monkeypatch, tmp_path, host, environment):
    for name in ("RESKERNEL_API_TOKEN", "RESKERNEL_API_TOKEN_FILE", "RESKERNEL_ALLOW_OPEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    started: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.append(self.config))
    cli.main(["serve", "--host", host, "--data-dir", str(tmp_path)])
    assert [(config.host, config.http.header_timeout_s) for config in started] == [(host, 10.0)]


def test_secrets_are_read_from_files(tmp_path):
    token, url = tmp_path / "token", tmp_path / "url"
    token.write_text(TOKEN + "\n")
    url.write_text("redis://:p4ss@redis:6379/0\n")
    settings = Settings.from_env({"RESKERNEL_API_TOKEN_FILE": str(token), "RESKERNEL_STORE_URL_FILE": str(url)})
    assert (settings.api_token, settings.store_url) == (TOKEN, "redis://:p4ss@redis:6379/0")
    assert TOKEN not in repr(settings) and "p4ss" not in repr(settings)
    password = tmp_path / "password"
    password.write_text("p@ss/word\n")
    settings = Settings.from_env({"RESKERNEL_STORE_URL": "redis://redis:6379/0",
                                  "RESKERNEL_STORE_PASSWORD_FILE": str(password)})
    assert settings.store_url == "redis://:p%40ss%2Fword@redis:6379/0"
    assert redis.connection.parse_url(settings.store_url)["password"] == "p@ss/word"  # as redis-py reads it
    (tmp_path / "empty").write_text("\n")
    for environment, message in (
            ({"RESKERNEL_API_TOKEN_FILE": str(token), "RESKERNEL_API_TOKEN": TOKEN}, "not both"),
            ({"RESKERNEL_API_TOKEN_FILE": str(tmp_path / "missing")}, "cannot read"),
            ({"RESKERNEL_STORE_URL_FILE": str(tmp_path / "empty")}, "is empty"),
            ({"RESKERNEL_STORE_PASSWORD": "x"}, "needs a redis:// RESKERNEL_STORE_URL"),
            ({"RESKERNEL_STORE_PASSWORD": "x", "RESKERNEL_STORE_URL": "redis://:y@redis:6379/0"}, "credentials")):
        with pytest.raises(ValueError, match=message):
            Settings.from_env(environment)

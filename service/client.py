"""A Python client for the reskernel service (httpx): submit, wait with progress, and get
results back as numpy arrays.

    from service.client import Client
    with Client("http://127.0.0.1:8000") as rk:
        grams = rk.kernels(x, architecture={"kind": "resnet", "depth": 5, "alpha": 0.1})
        grams["ntk"]                                   # (N, N) numpy array
        fit = rk.run("train", {...}, progress=lambda fraction, message: print(message))
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np
from numpy.typing import ArrayLike

Progress = Callable[[float, str], None]


class ProblemError(Exception):
    """The service answered with an RFC 9457 problem (or the job failed)."""

    def __init__(self, problem: dict[str, Any]):
        self.problem = problem
        self.status = problem.get("status")
        super().__init__(f"{problem.get('status')} {problem.get('title')}: {problem.get('detail')}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Client:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None):
        self.http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"status": response.status_code, "title": response.reason_phrase, "detail": response.text}
            raise ProblemError(problem)
        return response

    def submit(self, operation: str, body: dict[str, Any]) -> str:
        """Start (or find) the job for this request; returns its id at once. The service
        answers with the job's status document (`return=minimal`), never with the result,
        so this works for results of any size, computed now or found in the cache."""
        response = self._check(self.http.post(f"/v1/{operation}", json=_jsonable(body),
                                              headers={"Prefer": "respond-async, return=minimal"}))
        return response.json()["id"]

    def status(self, job_id: str) -> dict[str, Any]:
        return self._check(self.http.get(f"/v1/jobs/{job_id}")).json()

    def wait(self, job_id: str, *, progress: Progress | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Follow the job's events until it ends; returns its final status, or raises
        ProblemError when it failed or was cancelled, TimeoutError after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        status = self.status(job_id)
        if progress is not None and status["status"] not in ("queued", "running"):
            progress(status["progress"], status["message"])  # ended already (a cache hit): its end is reported
        while status["status"] in ("queued", "running"):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status['status']} after {timeout} s")
            try:
                status = self._follow(job_id, progress, deadline) or self.status(job_id)
            except httpx.TransportError:
                time.sleep(0.5)
                status = self.status(job_id)
        if status["status"] != "succeeded":
            error = status.get("error") or {"status": 409, "title": "Job canceled", "detail": f"job {job_id} "
                                            "was canceled"}
            raise ProblemError(error | {"job": job_id})
        return status

    def _follow(self, job_id: str, progress: Progress | None, deadline: float | None) -> dict[str, Any] | None:
        read = None if deadline is None else max(deadline - time.monotonic(), 0.1)
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(10.0, read=read)) as stream:
            self._check(stream)
            event = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("progress", "done"):
                    status = json.loads(line.split(":", 1)[1])
                    if progress is not None:
                        progress(status["progress"], status["message"])
                    if event == "done":
                        return status
                if deadline is not None and time.monotonic() > deadline:
                    return None
        return None

    def result(self, job_id: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        """The result: its values, and its arrays as numpy arrays (downloaded as .npz)."""
        if not (status and status.get("result")):
            status = self.status(job_id)
        manifest = status["result"]
        values = dict(manifest["values"])
        if manifest["arrays"]:
            response = self._check(self.http.get(f"/v1/jobs/{job_id}/result",
                                                 headers={"Accept": "application/x-npz"}))
            with np.load(io.BytesIO(response.content)) as arrays:
                values |= {name: arrays[name] for name in arrays.files}
        return values

    def block(self, job_id: str, array: str, rows: tuple[int, int] | None = None,
              cols: tuple[int, int] | None = None) -> np.ndarray:
        """Rows [a, b) and columns [c, d) of one array of a finished job's result (.npy, read on the
        server from the stored file: a block of a Gram matrix too large to download whole)."""
        query = {"array": array} | ({"rows": f"{rows[0]}:{rows[1]}"} if rows else {}) | (
            {"cols": f"{cols[0]}:{cols[1]}"} if cols else {})
        response = self._check(self.http.get(f"/v1/jobs/{job_id}/result", params=query,
                                             headers={"Accept": "application/x-npy"}))
        return np.load(io.BytesIO(response.content))

    def run(self, operation: str, body: dict[str, Any], *, progress: Progress | None = None,
            timeout: float | None = None) -> dict[str, Any]:
        """Submit, wait (reporting progress), and return the result."""
        job_id = self.submit(operation, body)
        return self.result(job_id, self.wait(job_id, progress=progress, timeout=timeout))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._check(self.http.post(f"/v1/jobs/{job_id}:cancel", json={})).json()

    def smoothness(self, architectures: Sequence[dict[str, Any]], *, points: ArrayLike | None = None,
                   targets: ArrayLike | None = None, progress: Progress | None = None, **fields: Any) -> dict[str, Any]:
        """Each architecture's interpolant and its mu: on the circle (`n_train=` or `train_angles=`), or on
        the sphere S^(d-1) of R^d with `points` (n, d) of unit norm and their `targets` (n,). Other fields
        (`n_grid`, `measure`, `bandwidth`, ...) as keywords. Returns {"results": [...], and the arrays as
        numpy: "interpolants", "grid_points" (M, d) or "angles", ...}."""
        body = {"architectures": list(architectures), "points": points, "targets": targets, **fields}
        return self.run("smoothness", {k: v for k, v in body.items() if v is not None}, progress=progress)

    def kernels(self, x: ArrayLike, x2: ArrayLike | None = None, *, architecture: dict[str, Any],
                kernels: Sequence[str] = ("nngp", "ntk"), progress: Progress | None = None) -> dict[str, Any]:
        """Analytic Gram matrices: {"nngp": (N1, N2), "ntk": (N1, N2), "shape": [N1, N2]}. x: points (N1, d),
        or signals (N1, P, C) / images (N1, H, W, C) for the kinds "conv-resnet" and "cnn"."""
        return self.run("kernels", {"x": x, "x2": x2, "architecture": architecture, "kernels": list(kernels)},
                        progress=progress)

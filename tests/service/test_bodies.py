"""Issue 19 (request bodies): errors bounded and built off the event loop, echoed names clipped,
duplicate keys refused, bodies parsed under a budget of bytes, and every request that used to fail
inside a worker refused by its schema, naming its field, before any job exists."""

import asyncio
import json

import pytest

from service.http.bodies import Body, ByteBudget, parse
from service.http.problems import InvalidRequest
from service.operations.kernels import KernelsRequest
from service.settings import Limits

PROBLEM = "application/problem+json"
ARCH = {"kind": "resnet", "depth": 5, "alpha": 0.1}
JSON = {"content-type": "application/json"}


def refused(response, field: str) -> dict:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    return problem


@pytest.mark.anyio
async def test_many_unknown_keys_give_a_short_capped_422(api):
    body = {"x": [[1.0, 0.0]], "architecture": ARCH} | {f"k{i}": 1 for i in range(100_000)}
    response = await api.post("/v1/kernels", json=body)
    problem = refused(response, "k0")
    assert len(problem["errors"]) == 20 and problem["error_count"] == 100_000
    assert "(and 99995 more)" in problem["detail"] and len(response.content) < 4000


def test_unknown_keys_are_counted_without_one_validation_error_each(monkeypatch):
    """The walk finds them: pydantic never builds the 200,000 errors (nested keys too)."""
    def validate(*args, **kwargs):
        raise AssertionError("validated a body with unknown keys")

    monkeypatch.setattr(KernelsRequest, "model_validate", validate)
    body = {"x": [[1.0, 0.0]], "architecture": ARCH | {f"k{i}": 1 for i in range(100_000)}}
    with pytest.raises(InvalidRequest) as caught:
        parse(KernelsRequest, json.dumps(body).encode(), Limits())
    assert caught.value.extra == {"error_count": 100_000} and caught.value.errors[0]["field"] == "architecture.k0"


@pytest.mark.anyio
async def test_validation_errors_are_built_in_the_parsing_thread(api, monkeypatch):
    """The 422's list is merged and rendered where the body was parsed, not on the event loop."""
    import threading

    import service.http.problems

    loop_thread, seen = threading.get_ident(), []
    merge = service.http.problems.field_name

    def watched(loc):
        seen.append(threading.get_ident())
        return merge(loc)

    monkeypatch.setattr(service.http.problems, "field_name", watched)
    response = await api.post("/v1/smoothness", json={"architectures": [{"kind": "cnn", "depth": 0}] * 30,
                                                      "n_train": 6})
    assert response.status_code == 422 and seen and loop_thread not in seen


@pytest.mark.anyio
async def test_long_names_are_clipped(api):
    keys = {"k" * 300_000 + str(i): 1 for i in range(5)}
    response = await api.post("/v1/kernels", json={"x": [[1.0, 0.0]], "architecture": ARCH} | keys)
    assert response.status_code == 422 and len(response.content) < 8000, len(response.content)
    assert all(len(e["field"]) <= 65 and e["field"].endswith("\u2026") for e in response.json()["errors"])
    # an experiment's unknown parameter is echoed by the engine's message: clipped too
    response = await api.post("/v1/experiments/interpolation", json={"parameters": {"p" * 300_000: 1}})
    assert response.status_code == 422 and len(response.content) < 8000, len(response.content)


@pytest.mark.anyio
@pytest.mark.parametrize(("body", "field"), [
    ('{"x": [[1.0, 0.0]], "architecture": {"kind": "resnet", "depth": 5}, "x": [[2.0, 0.0]]}', "x"),
    ('{"x": [[1.0, 0.0]], "architecture": {"kind": "resnet", "depth": 5, "depth": 6}}', "architecture.depth"),
])
async def test_duplicate_keys_are_refused(api, body, field):
    problem = refused(await api.post("/v1/kernels", content=body, headers=JSON), field)
    assert "duplicate key" in problem["detail"]


@pytest.mark.anyio
async def test_an_integer_beyond_float64_is_a_422_naming_it(api):
    body = '{"parameters": {"alphas": [' + "9" * 400 + "]}}"
    refused(await api.post("/v1/experiments/interpolation", content=body, headers=JSON), "parameters.alphas.0")


SMOOTH = {"architectures": [ARCH], "n_train": 6}
RKHS = SMOOTH | {"measure": "rkhs"}
NET = {"architecture": ARCH, "width": 8, "y_train": [1.0], "steps": 2}


@pytest.mark.anyio
@pytest.mark.parametrize(("operation", "body", "field"), [
    ("smoothness", SMOOTH | {"n_grid": 4097}, "n_grid"),
    ("smoothness", SMOOTH | {"n_train": 1}, "n_train"),
    ("smoothness", {"samples": [1.0]}, "samples"),
    ("smoothness", {"samples": [1.0, 2.0]}, "samples"),
    ("smoothness", {"samples": [0.0, 0.0, 0.0, 0.0]}, "samples"),
    ("smoothness", SMOOTH | {"targets": [0.0] * 6}, "targets"),
    ("smoothness", RKHS | {"bandwidth": 1e300}, "bandwidth"),
    ("smoothness", RKHS | {"bandwidth": 5e-324}, "bandwidth"),
    ("smoothness", RKHS | {"cutoff": 10**30}, "cutoff"),
    ("smoothness", RKHS | {"cutoff": 2000}, "cutoff"),  # 2000 x 0.5: the weights underflow
    ("bounds", {"architecture": ARCH, "width": 10**400, "input_dim": 2}, "width"),
    ("bounds", {"architecture": ARCH, "width": 10, "input_dim": 2, "c_phi": 5e-324}, "c_phi"),
    ("bounds", {"architecture": ARCH, "width": 10, "input_dim": 2, "c_phi": 1e308}, "c_phi"),
    ("bounds", {"architecture": {"kind": "mlp", "depth": 100}, "width": 10, "input_dim": 2, "c_phi": 1000},
     "architecture.depth"),  # B_mlp ~ 3000^99
    ("train", NET | {"x_train": [[0.0, 0.0]]}, "x_train"),
    ("train", NET | {"x_train": [[1e300, 0.0]]}, "x_train"),
    ("kernels", {"architecture": ARCH, "x": [[1e300, 0.0]]}, "x"),
    ("kernels", {"architecture": ARCH, "x": [[1.0, 0.0]], "x2": [[1e150, 0.0]]}, "x2"),
    ("regression", {"architecture": ARCH, "x_train": [[1.0, 0.0]], "y_train": [1.0], "x_test": [[1e200, 1.0]]},
     "x_test"),
    ("empirical-kernels", {"architecture": ARCH, "width": 8, "x": [[1e300, 0.0]]}, "x"),
])
async def test_requests_that_failed_in_the_worker_are_refused_by_their_field(api, operation, body, field):
    before = (await api.get("/v1/jobs")).json()["total"]
    refused(await api.post(f"/v1/{operation}", json=body), field)
    assert (await api.get("/v1/jobs")).json()["total"] == before


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "parameters", "field"), [
    ("interpolation", {"depths": [5, 150], "alphas": [100.0]}, "parameters.depths"),  # the ResNet overflows
    ("rkhs-vs-curvature", {"depth": 1000}, "parameters.depth"),
])
async def test_experiments_too_deep_for_float64_are_refused(api, name, parameters, field):
    refused(await api.post(f"/v1/experiments/{name}", json={"parameters": parameters}), field)


def test_points_and_zero_points_within_range_stay_accepted():
    from service.operations.train import TrainRequest

    KernelsRequest.model_validate({"architecture": ARCH, "x": [[0.0, 0.0], [1e100, 0.0]]})
    TrainRequest.model_validate(NET | {"x_train": [[0.0, 0.0]], "lr": 0.1})  # lr given: no step bound needed
    TrainRequest.model_validate(NET | {"x_train": [[0.0, 0.0]], "architecture": ARCH | {"sigma_b": 0.1}})


# ---------------------------------------------------------------- memory: one buffer, a budget of bytes

def test_parse_frees_the_body_and_gives_its_budget_back():
    async def main():
        budget = ByteBudget(100)
        body = Body(json.dumps({"x": [[1.0, 0.0]], "architecture": ARCH}).encode())
        body.hold(budget, await budget.acquire(len(body)))
        assert budget.used == len(body)
        parse(KernelsRequest, body, Limits())
        assert budget.used == 0 and len(body) == 0
        body.release()  # idempotent
        assert budget.used == 0

    asyncio.run(main())


def test_the_budget_makes_bodies_wait_their_turn():
    async def main():
        budget = ByteBudget(100)
        first = await budget.acquire(60)
        second = asyncio.ensure_future(budget.acquire(60))
        big = asyncio.ensure_future(budget.acquire(10**9))  # larger than the budget: waits until alone
        await asyncio.sleep(0.01)
        assert not second.done() and not big.done()
        budget.release(first)
        assert await asyncio.wait_for(second, 1) == 60
        await asyncio.sleep(0.01)
        assert not big.done()
        budget.release(60)
        assert await asyncio.wait_for(big, 1) == 100 and budget.used == 100
        budget.release(50)
        cancelled = asyncio.ensure_future(budget.acquire(80))
        await asyncio.sleep(0.01)
        cancelled.cancel()  # a client that leaves while waiting takes nothing
        await asyncio.sleep(0.01)
        assert budget.used == 50
        budget.release(50)
        assert budget.used == 0 and await budget.acquire(100) == 100

    asyncio.run(main())


def test_arrays_read_in_pieces_equal_json(monkeypatch):
    """The lean reader (pieces of a few bytes here) gives exactly what json gives, or leaves the
    array to json: valid and invalid arrays, spacing, nesting, duplicates, strings that look alike."""
    import random

    import numpy as np

    import service.http.arrays as arrays
    from service.http.bodies import MalformedJSON, _load

    monkeypatch.setattr(arrays, "MIN_CUT", 0)
    monkeypatch.setattr(arrays, "PIECE", 7)
    monkeypatch.setattr(arrays, "CHUNK", 5)
    rng, read = random.Random(0), []
    original = arrays._read
    monkeypatch.setattr(arrays, "_read", lambda *args: read.append(original(*args)) or read[-1])

    def number():
        return rng.choice(["0", "-0", "1", "-12", "3.25", "1e5", "-2.5E-3", "0.0", "7e+2", "123456789"])

    def spaced(items):
        return rng.choice(["", " ", "\n "]).join(["[", rng.choice([",", " ,", ", "]).join(items), "]"])

    def array():
        if rng.random() < 0.5:
            return spaced([number() for _ in range(rng.randint(1, 6))])
        d = rng.randint(1, 4)
        return spaced([spaced([number() for _ in range(d)]) for _ in range(rng.randint(1, 6))])

    bad = ["[]", "[[]]", "[[1],[2,3]]", "[1,[2]]", "[1,2,]", "[,1]", "[1,,2]", "[01]", "[+1]", "[1.]", "[.5]",
           "[1 2]", "[NaN]", "[[1,2],[3,4]", "[1e400]", "[" + "9" * 400 + "]", "[[[1]]]", "[true]", '["1"]', "[-]",
           "[1e5e5]", "[[1,2] [3,4]]", "[[1,2],,[3,4]]", "[1-2]"]
    bodies = []
    for _ in range(300):
        value = array() if rng.random() < 0.8 else rng.choice(bad)
        bodies.append('{"architecture": {"kind": "mlp"}, "x": ' + value + ', "n": 1}')
    bodies += ['{"x": [1, 2], "x": [3, 4]}', '{"parameters": {"x": [1, 2]}, "y": 1}', '{"s": "\\"x\\": [1, 2]"}',
               '{"x": [1, 2] "y": 1}', '[{"x": [1, 2]}]', '{"x": [[1, 2], [3, 4]], "x2": [5, 6]}', '{"x": [1, 2]']
    for body in bodies:
        try:
            expected = json.loads(body)
        except ValueError:
            with pytest.raises(MalformedJSON):
                _load(body.encode())
            continue
        actual, _ = _load(body.encode())
        assert isinstance(actual, type(expected)), body
        if not isinstance(expected, dict):
            continue
        assert list(actual) == list(expected), body
        for key, value in actual.items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, np.array(expected[key], dtype=np.float64)), body
                assert str(value.tolist()) == str(np.array(expected[key], dtype=np.float64).tolist()), body
            else:
                assert value == expected[key], body
    assert sum(a is not None for a in read) > 200 and sum(a is None for a in read) > 20  # both ways were taken


def test_a_body_of_points_is_parsed_in_about_its_own_size():
    """Issue 19: the API held ~10x a body. Parsed in pieces, the arrays never exist as Python lists:
    the parse's peak (above the body it was handed) stays under the body's size."""
    import tracemalloc

    import numpy as np

    points = np.random.default_rng(0).standard_normal((100_000, 2))
    raw = json.dumps({"x": points.tolist(), "architecture": ARCH}).encode()
    tracemalloc.start()
    try:
        request = parse(KernelsRequest, raw, Limits(points=10**6, body_bytes=2**30))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(request.x, points)
    assert peak < len(raw), (peak, len(raw))


@pytest.mark.anyio
async def test_bodies_go_through_the_budget_whatever_their_framing(settings, jobs):
    """A budget smaller than one body: each body waits until it is alone, then parses; a chunked
    body (no Content-Length) is charged once read. The budget is all given back."""
    from dataclasses import replace

    import httpx

    from service.http.app import create_app

    app = create_app(replace(settings, limits=replace(settings.limits, parse_bytes=10)), jobs)
    bad = {"x": [[1.0, 0.0]], "architecture": ARCH | {"depth": 0}}  # refused after parsing: no job

    async def chunks():
        yield json.dumps(bad).encode()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reskernel") as api:
        answers = await asyncio.gather(*[api.post("/v1/kernels", json=bad) for _ in range(4)],
                                       api.post("/v1/kernels", content=chunks(), headers=JSON))
    assert [a.status_code for a in answers] == [422] * 5, [a.text for a in answers]
    assert all(a.json()["errors"][0]["field"] == "architecture.depth" for a in answers)
    assert app.state.parse_budget.used == 0

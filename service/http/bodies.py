"""Request bodies: read into one buffer under a budget of bytes being parsed at once, parsed off
the event loop, arrays through numpy with their shapes checked before their numbers, and errors
that cost no more than the request.

`read_body(request)` (on the event loop) reads the body into one `Body`, then waits until it fits
`Limits.parse_bytes` (the bodies being parsed at once; a parse holds about twice its body's size).
`parse(model, body, limits)` runs in a worker thread: JSON (large arrays of numbers read in pieces
straight into float64 by `service.http.arrays`; duplicate keys refused, nesting bounded; the body's
bytes freed once parsed), then the points limit by counting rows only, unknown keys (the first
`MAX_ERRORS` listed, the rest counted), then the model's validation, whose array fields (`Points`,
`Values` in `service.operations.fields`) become float64 numpy arrays in one pass. Every error,
422s included, is built in that thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any, TypeVar, get_args

from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from service.errors import LimitExceeded, ServiceError
from service.http.arrays import cut_arrays, restore
from service.http.problems import MAX_ERRORS, InvalidRequest, invalid
from service.jobs.admission import check_sizes
from service.operations.fields import ARCHITECTURE_KINDS, ARRAY_FIELDS
from service.settings import Limits

M = TypeVar("M", bound=BaseModel)
MAX_NESTING = 32  # containers inside containers outside the array fields
RAW_ERRORS = 1000  # pydantic errors read (the rest only counted)


class MalformedJSON(ServiceError):
    status, title = 400, "Malformed JSON"


class ByteBudget:
    """Bytes of request bodies being parsed at once. `acquire` waits on the event loop (holding no
    thread) until they fit; `release` may be called from any thread. First come, first served; a
    body larger than the whole budget waits until it is alone."""

    def __init__(self, total: int):
        self.total, self.used = max(1, total), 0
        self._lock = threading.Lock()
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, size: int) -> int:
        """Wait until `size` bytes (at most the whole budget) fit; the bytes granted."""
        size = min(max(size, 0), self.total)
        with self._lock:
            if not self._waiting and self.used + size <= self.total:
                self.used += size
                return size
            entry = (size, asyncio.get_running_loop().create_future())
            self._waiting.append(entry)
        try:
            await entry[1]
        except BaseException:  # cancelled (the client left): give back what was granted meanwhile
            with self._lock:
                granted = entry not in self._waiting
                if not granted:
                    self._waiting.remove(entry)
            if granted:
                self.release(size)
            raise
        return size

    def release(self, size: int) -> None:
        woken = []
        with self._lock:
            self.used -= size
            while self._waiting and self.used + self._waiting[0][0] <= self.total:
                granted, future = self._waiting.popleft()
                self.used += granted
                woken.append(future)
        for future in woken:
            future.get_loop().call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _budget(app: FastAPI, limits: Limits) -> ByteBudget:
    budget = getattr(app.state, "parse_budget", None)
    if budget is None or budget.total != max(1, limits.parse_bytes):
        budget = app.state.parse_budget = ByteBudget(limits.parse_bytes)
    return budget


class Body(bytearray):
    """A request body, holding its bytes of the parse budget until `release` (or until it is
    garbage: nothing can leak them)."""

    _held: weakref.finalize[..., Body] | None = None

    def hold(self, budget: ByteBudget, size: int) -> None:
        if self._held is not None:
            self._held.detach()
        self._held = weakref.finalize(self, budget.release, size)

    def release(self) -> None:
        """Free the bytes and give back the budget (idempotent)."""
        self.clear()
        if self._held is not None:
            self._held()


async def read_body(request: Request) -> Body:
    """The request's body, once read and once it fits the parse budget (charged after reading, so
    a client that sends slowly holds no budget); a body the BodyLimit middleware cut off (it has
    answered 413 already) raises a 413 that nobody will see, ending the handler quietly."""
    body = Body()
    try:
        async for chunk in request.stream():
            body += chunk
    except ClientDisconnect:
        raise LimitExceeded(413, "body", "the request body was cut off") from None
    budget = _budget(request.app, request.app.state.settings.limits)
    body.hold(budget, await budget.acquire(len(body)))
    return body


class _Duplicated(dict[str, Any]):
    """A JSON object that named a key more than once (`duplicates`: those keys)."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]], marked: list[bool]) -> dict[str, Any]:
    """json's object_pairs_hook: the object, marked when a key repeats (and `marked` set)."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    duplicated = _Duplicated(obj)
    duplicated.duplicates = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    marked.append(True)
    return duplicated


def _load(raw: bytes | bytearray) -> tuple[Any, bool]:
    """The JSON value, and whether some object in it repeats a key. Large arrays of numbers are
    read in pieces straight into float64 (`service.http.arrays`); the rest by `json`."""
    reduced, found = cut_arrays(raw, ARRAY_FIELDS)
    if found:
        data, repeated = _decode(reduced)
        if restore(data, found):
            return data, repeated
        del data, found  # a placeholder is not where it was cut: parse the whole body
    return _decode(raw)


def _decode(raw: bytes | bytearray) -> tuple[Any, bool]:
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"the body is not valid JSON: {exc}") from None
    if isinstance(raw, Body):
        raw.release()  # the text holds the body now: its bytes go before the objects are built
    marked: list[bool] = []
    try:  # NaN and Infinity parse, and are refused with their field by validation
        return json.loads(text, object_pairs_hook=lambda pairs: _object(pairs, marked)), bool(marked)
    except RecursionError:
        raise MalformedJSON("the body is nested too deeply") from None
    except ValueError as exc:
        raise MalformedJSON(f"the body is not valid JSON: {exc}") from None


def _children(item: Any) -> Iterable[Any]:
    return item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()


def _nesting(value: Any) -> int:
    """How deep containers nest in value (an iterative walk: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth
        stack.extend((child, depth + 1) for child in _children(item) if isinstance(child, (dict, list)))
    return deepest


def _duplicates(data: Any) -> list[dict[str, Any]]:
    """Errors naming each key given twice in one object, by its path (`_object` marked them)."""
    found: list[dict[str, Any]] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack and len(found) < MAX_ERRORS:
        item, loc = stack.pop()
        if isinstance(item, _Duplicated):
            found += [{"loc": ("body", *loc, k), "msg": "duplicate key: each key may appear once in an object"}
                      for k in item.duplicates]
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        stack.extend((v, (*loc, k)) for k, v in pairs if isinstance(v, (dict, list)))
    return found[:MAX_ERRORS]


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models inside a field's annotation (`Spec`, `list[Spec]`, `Spec | None`, `A | B`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def _nested(annotation: Any, value: Any) -> type[BaseModel] | None:
    """The model that validates `value` (an object): of a union of models (the architectures,
    discriminated by `kind`), the one whose `kind` admits value's, or None (validation names the kind)."""
    models = _models(annotation)
    if len(models) > 1 or (models and "kind" in models[0].model_fields and isinstance(value, dict)):
        return next((m for m in models if (kind := m.model_fields.get("kind")) is not None
                     and isinstance(value, dict) and value.get("kind") in get_args(kind.annotation)), None)
    return models[0] if models else None


def _unknown_keys(model: type[BaseModel], data: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Keys no model field names (the first MAX_ERRORS, and how many there are), nested models
    included: found by a walk that stops listing early, not by one validation error each."""
    found: list[dict[str, Any]] = []
    count = 0
    stack: list[tuple[type[BaseModel], dict[str, Any], tuple[Any, ...]]] = [(model, data, ())]
    while stack:
        cls, obj, loc = stack.pop()
        fields = cls.model_fields
        for key, value in obj.items():
            info = fields.get(key)
            if info is None:
                count += 1
                if len(found) < MAX_ERRORS:
                    found.append({"loc": ("body", *loc, key), "msg": "unknown field: not part of the request schema"})
                continue
            if isinstance(value, dict) and (inner := _nested(info.annotation, value)) is not None:
                stack.append((inner, value, (*loc, key)))
            elif isinstance(value, list):
                stack.extend((m, v, (*loc, key, i)) for i, v in enumerate(value)
                             if isinstance(v, dict) and (m := _nested(info.annotation, v)) is not None)
    return found, count


def parse(model: type[M], raw: bytes | bytearray, limits: Limits) -> M:
    """The validated request, or a 400 (JSON), 413 (sizes) or 422 (fields, capped) error."""
    try:
        return _parse(model, raw, limits)
    finally:
        if isinstance(raw, Body):
            raw.release()


def _parse(model: type[M], raw: bytes | bytearray, limits: Limits) -> M:
    data, repeated = _load(raw)
    if not isinstance(data, dict):
        raise invalid([{"loc": ("body",), "msg": f"the body must be a JSON object, got {type(data).__name__}"}])
    if repeated:
        raise invalid(_duplicates(data))
    others = {k: v for k, v in data.items() if k not in ARRAY_FIELDS}
    if _nesting(others) > MAX_NESTING:
        raise MalformedJSON(f"the body nests objects and arrays deeper than {MAX_NESTING} levels")
    check_sizes(data.get, limits)
    unknown, count = _unknown_keys(model, data)
    if unknown:
        raise invalid(unknown, count)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def validation_problem(exc: ValidationError) -> InvalidRequest:
    """The 422 of a validation error: its first RAW_ERRORS errors read, all of them counted (also
    what the CLI prints for a request it validates in-process)."""
    errors = []
    for e in exc.errors(include_url=False, include_input=False, include_context=True)[:RAW_ERRORS]:
        where = (e.get("ctx") or {}).get("where", ())
        errors.append({"loc": ("body", *_untagged(e["loc"]), *where), "msg": e["msg"]})
    return invalid(errors, exc.error_count())


def _untagged(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """loc without the tags pydantic puts after a discriminated union (`architecture.resnet.depth`
    is `architecture.depth`: the field a client sent)."""
    return tuple(p for i, p in enumerate(loc) if not (i and loc[i - 1] == "architecture" and p in ARCHITECTURE_KINDS))


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` of a route that reads its body itself (see `parse`); the model's
    schema is added to the document's components by `service.http.app._openapi`."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}

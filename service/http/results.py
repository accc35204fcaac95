"""A finished job's result as HTTP: JSON (rendered once, then served from the file), one
array as `.npy`, or all arrays as `.npz`. ETags are strong: the job id is the content's hash."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
from fastapi import Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from service.errors import NotAcceptable, ServiceError
from service.store.files import RESULT_JSON, is_chunked, open_array, render_json, serializable
from service.store.job import Job
from service.store.protocol import Store

NPY, NPZ, JSON = "application/x-npy", "application/x-npz", "application/json"
INLINE_BYTES = 2**20  # rendered JSON up to this size is read and sent in one piece, larger files streamed
ZARR_SLAB_BYTES = 64 * 2**20  # rows of a Zarr array read at once when it is streamed


def negotiate(accept: str | None) -> str:
    """The media type to answer with: JSON, .npy or .npz, by the Accept header's quality
    values (RFC 9110: highest q first, ties in the header's order; q=0 means "not this")."""
    if not accept or not accept.strip():
        return JSON
    ranked = []
    for order, part in enumerate(accept.split(",")):
        kind, *options = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, order, kind.lower(), quality))
    for _, _, kind, quality in sorted(ranked):
        if quality <= 0:
            break
        if kind in (NPY, NPZ, JSON):
            return kind
        if kind in ("*/*", "application/*"):
            return JSON
    raise NotAcceptable(f"cannot answer with {accept!r}; choose {JSON}, {NPY} or {NPZ}")


def _meta(store: Store, job: Job) -> dict[str, Any]:
    path = store.result_dir(job.id) / "meta.json"
    if not path.exists():
        raise ServiceError(f"the result files of job {job.id} are missing; submit the request again",
                           status=410, title="Result gone")
    return json.loads(path.read_text())


def manifest(store: Store, job: Job) -> dict[str, Any]:
    """What a finished result holds: its scalar values, and each array's shape and URL."""
    meta = _meta(store, job)
    links = _links(job, meta["arrays"])
    return {"values": meta["values"],
            "arrays": {name: {**spec, "url": links[name]} for name, spec in meta["arrays"].items()}}


def _links(job: Job, names: Iterable[str]) -> dict[str, str]:
    return {name: f"/v1/jobs/{job.id}/result?array={name}" for name in names}


Window = tuple[str | None, str | None]  # the `rows` and `cols` query parameters, "a:b"


def _bounds(text: str, length: int, field: str) -> slice:
    """The half-open range "a:b" (either end may be left out) of an axis of `length`; a 422 naming `field`."""
    start, colon, stop = text.partition(":")
    try:
        a, b = int(start) if start.strip() else 0, int(stop) if stop.strip() else length
    except ValueError:
        a = b = -1
    if not colon or not 0 <= a < b <= length:
        raise ServiceError(f"{field} {text!r} must be a range a:b of whole numbers with 0 <= a < b <= {length} "
                           "(the axis' length); either end may be left out", status=422, field=field)
    return slice(a, b)


def _window(window: Window, array: str | None, spec: dict[str, Any]) -> tuple[slice, ...]:
    """The block `rows` (first axis) x `cols` (second axis) of one array."""
    rows, cols = window
    if array is None:
        raise ServiceError("rows and cols read a block of one array: name it with ?array=NAME", status=422,
                           field="rows" if rows is not None else "cols")
    shape = spec["shape"]
    if cols is not None and len(shape) < 2:
        raise ServiceError(f"the array {array!r} has one axis (shape {shape}): it has no cols", status=422,
                           field="cols")
    block = [_bounds(rows, shape[0], "rows") if rows is not None else slice(0, shape[0])]
    if len(shape) >= 2:
        block.append(_bounds(cols, shape[1], "cols") if cols is not None else slice(0, shape[1]))
    return tuple(block)


def respond(store: Store, job: Job, request: Request, *, hit: bool, json_limit: int,
            array: str | None = None, window: Window = (None, None)) -> Response:
    """200 with the result in the negotiated form, or 304 when the client's ETag matches; with a
    `window` (rows, cols), the block of one array (JSON or .npy)."""
    kind = negotiate(request.headers.get("accept"))
    meta = _meta(store, job)
    arrays = meta["arrays"]
    suffix = {JSON: "json", NPY: "npy", NPZ: "npz"}[kind]
    tag = f'"{job.id}"' if kind == JSON and array is None else f'"{job.id}-{suffix}-{array or ""}"'
    if array is not None and array not in arrays:
        raise ServiceError(f"the result has no array {array!r}; it has {sorted(arrays)}", status=404,
                           title="No such array", field="array")
    if window != (None, None):
        return _block(store, job, request, kind, array, window, meta, json_limit, hit=hit)
    headers = {"ETag": tag, "X-Cache": "hit" if hit else "miss", "Cache-Control": "private, max-age=31536000",
               "Vary": "Accept"}  # one URL, a representation per Accept
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    folder = store.result_dir(job.id)
    store.touch(job.id)
    if kind == NPY:
        if array is None and len(arrays) != 1:
            raise NotAcceptable(f"the result has {len(arrays)} arrays {sorted(arrays)}: ask for one with "
                                f"?array=NAME, or for all with Accept: {NPZ}",
                                extra={"job": job.id, "arrays": _links(job, arrays)},
                                headers={"Location": f"/v1/jobs/{job.id}"})
        name = array or next(iter(arrays))
        if is_chunked(folder, name):  # filled across the workers: streamed from its chunks
            return StreamingResponse(_npy(_opened(store, job, name)), media_type=NPY, headers=headers | {
                "Content-Disposition": f'attachment; filename="{job.operation}-{name}.npy"'})
        return Download(folder / f"{name}.npy", media_type=NPY, headers=headers, filename=f"{job.operation}-{name}.npy")
    if kind == NPZ:
        names = [array] if array else sorted(arrays)
        return StreamingResponse(_npz(_open_members(folder, names)), media_type=NPZ, headers=headers | {
            "Content-Disposition": f'attachment; filename="{job.operation}.npz"'})
    size = sum(math.prod(a["shape"]) for name, a in arrays.items() if array in (None, name))
    if size > json_limit:
        raise NotAcceptable(f"the result holds {size} numbers, over the JSON limit of {json_limit}: download "
                            f"the arrays as {NPY} (one, with ?array=NAME) or {NPZ} (all)",
                            extra={"job": job.id, "arrays": _links(job, arrays), "values": meta["values"]},
                            headers={"Location": f"/v1/jobs/{job.id}"})
    if array is not None:
        return Response(orjson.dumps(serializable(_opened(store, job, array)[...]),
                                     option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON, headers=headers)

    def render(f: BinaryIO) -> None:
        f.write(render_json(meta["values"], {name: _opened(store, job, name)[...] for name in arrays}))

    rendered = _rendered(store, job, RESULT_JSON, render)
    if isinstance(rendered, Path) and rendered.stat().st_size <= INLINE_BYTES:
        rendered = rendered.read_bytes()
    if isinstance(rendered, bytes):
        return Response(rendered, media_type=JSON, headers=headers)
    return Download(rendered, media_type=JSON, headers=headers)


def _block(store: Store, job: Job, request: Request, kind: str, array: str | None, window: Window,
           meta: dict[str, Any], json_limit: int, *, hit: bool) -> Response:
    """A block of one array (`array` is in the result), read from its memory-mapped file or its Zarr
    chunks: JSON, or .npy streamed a slab of rows at a time (memory bounded whatever the array's size)."""
    block = _window(window, array, meta["arrays"].get(array, {}))
    assert array is not None  # _window: a window needs an array
    if kind == NPZ:
        raise NotAcceptable(f"a block (rows, cols) is answered as {JSON} or {NPY}, not {NPZ}")
    spans = ":".join(f"{s.start}-{s.stop}" for s in block)
    tag = f'"{job.id}-{"npy" if kind == NPY else "json"}-{array}-{spans}"'
    headers = {"ETag": tag, "X-Cache": "hit" if hit else "miss", "Cache-Control": "private, max-age=31536000",
               "Vary": "Accept"}
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    store.touch(job.id)
    source = _opened(store, job, array)
    if kind == JSON:
        size = math.prod(s.stop - s.start for s in block)
        if size > json_limit:
            raise NotAcceptable(f"the block holds {size} numbers, over the JSON limit of {json_limit}: ask for "
                                f"it as {NPY}, or for fewer rows", extra={"job": job.id})
        return Response(orjson.dumps(serializable(np.asarray(source[block])), option=orjson.OPT_SERIALIZE_NUMPY),
                        media_type=JSON, headers=headers)
    name = f"{job.operation}-{array}-{spans.replace(':', '_')}.npy"
    return StreamingResponse(_npy(source, block), media_type=NPY, headers=headers | {
        "Content-Disposition": f'attachment; filename="{name}"'})


def _opened(store: Store, job: Job, name: str) -> Any:
    """One result array, opened for reading (`service.store.files.open_array`); 410 when its files are gone."""
    try:
        return open_array(store.result_dir(job.id), name)
    except FileNotFoundError:
        raise ServiceError(f"the result files of job {job.id} are missing; submit the request again", status=410,
                           title="Result gone") from None


def _npy(source: Any, block: tuple[slice, ...] | None = None) -> Iterator[bytes]:
    """An .npy of `source` (a memory map or a Zarr array), or of its `block`, read Download.chunk_size
    bytes of rows at a time: memory bounded by a slab, whatever the array's size."""
    block = block or tuple(slice(0, n) for n in source.shape)
    shape = tuple(s.stop - s.start for s in block)
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(source.dtype)),
                                                  "fortran_order": False, "shape": shape})
    yield header.getvalue()
    row = max(1, math.prod(shape[1:]) * np.dtype(source.dtype).itemsize)
    step = max(1, Download.chunk_size // row)
    if hasattr(source, "chunks"):  # Zarr: every slab reads whole chunks; larger slabs read each chunk fewer times
        step = max(1, min(source.chunks[0], ZARR_SLAB_BYTES // row))
    rows, rest = block[0], block[1:]
    for start in range(rows.start, rows.stop, step):
        yield np.ascontiguousarray(source[(slice(start, min(start + step, rows.stop)), *rest)]).tobytes()


class Download(FileResponse):
    """A file sent in 4 MiB chunks (the default 64 KiB makes a 16 MB download 5x slower)."""

    chunk_size = 4 * 2**20


def _rendered(store: Store, job: Job, name: str, write: Callable[[BinaryIO], None]) -> Path | bytes:
    """result_dir/name, written once by `write` (atomically) and counted in the job's size;
    its bytes instead when the disk is full (a read never needs space)."""
    path = store.result_dir(job.id) / name
    if not path.exists():
        temporary = path.with_name(f".{name}.{uuid.uuid4().hex}")
        try:
            with open(temporary, "wb") as f:
                write(f)
            temporary.replace(path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            if exc.errno != errno.ENOSPC:
                raise
            buffer = io.BytesIO()
            write(buffer)
            return buffer.getvalue()
        store.touch(job.id, extra_bytes=path.stat().st_size)
    return path


class _Chunks(io.RawIOBase):
    """A write-only, unseekable file whose written bytes are taken out as chunks."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]  # bytes-like in, as RawIOBase
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _open_members(folder: Path, names: list[str]) -> list[tuple[str, Any]]:
    """Every member's file, opened before the answer starts: a result evicted (its folder deleted)
    while it is sent stays readable through these handles, so the download is never cut short. A
    Zarr array (filled across the workers) is opened as such: its chunks are read as it is sent."""
    opened: list[tuple[str, Any]] = []
    try:
        for name in names:
            opened.append((name, open_array(folder, name) if is_chunked(folder, name)
                           else open(folder / f"{name}.npy", "rb")))  # noqa: SIM115  # closed by _npz
    except FileNotFoundError:
        _close(opened)
        raise ServiceError(f"the result files in {folder.name!r} are missing; submit the request again",
                           status=410, title="Result gone") from None
    return opened


def _close(members: list[tuple[str, Any]]) -> None:
    for _, source in members:
        if isinstance(source, io.IOBase):
            source.close()


def _read(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(Download.chunk_size):
        yield chunk


def _npz(members: list[tuple[str, Any]]) -> Iterator[bytes]:
    """An .npz (a zip of .npy members, as numpy writes it) streamed from the result's open files:
    memory stays at one chunk whatever the result's size."""
    sink = _Chunks()
    try:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, source in members:
                is_file = isinstance(source, io.IOBase)
                size = os.fstat(source.fileno()).st_size if is_file else source.nbytes
                chunks = _read(source) if is_file else _npy(source)
                with archive.open(f"{name}.npy", "w", force_zip64=size >= 2**31) as member:
                    for chunk in chunks:
                        member.write(chunk)
                        yield sink.take()
        yield sink.take()
    finally:
        _close(members)

"""Content-addressed job ids: a request in canonical form (its scalar fields as JSON, its arrays
as float64) and the SHA-256 of that form and the engine's numerics version."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from engine import NUMERICS_VERSION
from service.operations.fields import ARRAY_FIELDS, Model


def split_request(request: Model) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The request's scalar fields (JSON form, defaults filled in) and its arrays as float64,
    in canonical form: -0.0 is 0.0, so equal requests have one id. A field an operation gained
    later (its model's `ID_OPTIONAL`) is left out while it holds its default, so the requests made
    before it existed keep their ids (the worker function reads it with that default)."""
    fields = type(request).model_fields
    unset = {name for name in getattr(request, "ID_OPTIONAL", ()) if getattr(request, name) == fields[name].default}
    params = _canonical(request.model_dump(mode="json", exclude=set(ARRAY_FIELDS) | unset))
    inputs = {name: np.asarray(value, dtype=np.float64) + 0.0 for name in ARRAY_FIELDS
              if (value := getattr(request, name, None)) is not None}
    return params, inputs


def _canonical(value: Any) -> Any:
    """-0.0 as 0.0 throughout a JSON-like value."""
    if isinstance(value, float):
        return value + 0.0
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def job_id(operation: str, params: dict[str, Any], inputs: dict[str, np.ndarray]) -> str:
    """SHA-256 of the canonical request: operation, parameters, each array's shape and
    float64 bytes, and the engine's numerics version."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"operation": operation, "params": params, "numerics": NUMERICS_VERSION,
                              "arrays": {k: list(v.shape) for k, v in sorted(inputs.items())}},
                             sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(inputs):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(inputs[name], dtype="<f8").tobytes())
    return digest.hexdigest()

"""What the operations share: request field types (arrays read by numpy, strict and finite;
the architecture), the result array types, and the progress callback their worker functions get.

Field names equal the engine's keywords; unknown keys and non-finite numbers are refused.
Limits that depend on the settings (points, depth, ...) are checked by `service.jobs.admission`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.architectures import ACTIVATIONS, KINDS, MAX_DEPTH, MAX_SCALE, Architecture
from engine.conv.architecture import (
    CONV_KINDS,
    MAX_FILTER,
    PARAMETRIZATIONS,
    READOUTS,
    ConvArchitecture,
    check_conv_points,
    check_network,
)
from engine.kernel_scale import LARGEST, out_of_range_depth

Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Kernel = Literal["nngp", "ntk"]
Parametrization = Literal["ntk", "standard", "xavier", "pytorch"]
_NUMBER_TYPES = {int, float}


def _numbers(value: Any, ndim: int) -> np.ndarray:
    """A JSON array of numbers (ndim 1) or of equal-length rows of numbers (ndim 2) as a
    float64 array, its shape checked before its numbers; strict (no strings, booleans,
    null) and finite. Raises ValueError with the first problem only."""
    if isinstance(value, np.ndarray):  # read by service.http.arrays: numbers, in equal rows
        if value.ndim != ndim:
            raise ValueError("must be an array of numbers" if ndim == 1 else "must be an array of arrays of numbers")
        return _finite(value)
    if not isinstance(value, list) or not value:  # the first problem only; `where` locates an element
        raise ValueError(f"must be a non-empty array of {'numbers' if ndim == 1 else 'arrays of numbers'}")
    rows = [value] if ndim == 1 else value
    if ndim == 2:
        if not all(isinstance(row, list) for row in rows):
            raise ValueError("must be an array of arrays of numbers")
        lengths = set(map(len, rows))
        if 0 in lengths:
            raise ValueError(f"row {next(i for i, r in enumerate(rows) if not r)} is empty")
        if len(lengths) > 1:
            raise ValueError(f"rows must all have the same length (ragged array: lengths {sorted(lengths)[:5]})")
    kinds: set[type] = set()
    for row in rows:
        kinds.update(map(type, row))
    if not kinds <= _NUMBER_TYPES:
        bad = next(t for t in kinds if t not in _NUMBER_TYPES)
        where = next((i, j) for i, row in enumerate(rows) for j, v in enumerate(row) if type(v) is bad)
        raise PydanticCustomError("array_element", "must be a number, got {kind}",
                                  {"kind": _json_type(bad), "where": where[1:] if ndim == 1 else where})
    try:
        array = np.array(value, dtype=np.float64)
    except OverflowError:
        raise ValueError("holds an integer too large for float64") from None
    return _finite(array)


def _finite(array: np.ndarray) -> np.ndarray:
    finite = np.isfinite(array)
    if not finite.all():
        at = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise PydanticCustomError("finite_number", "must be a finite number (NaN, Infinity and numbers beyond "
                                  "float64 are refused)", {"where": at})
    return array


def _json_type(kind: type) -> str:
    return {str: "a string", bool: "a boolean", type(None): "null", dict: "an object", list: "an array"}.get(
        kind, kind.__name__)


def _array_type(ndim: int, schema: dict[str, Any]) -> Any:
    return Annotated[np.ndarray, PlainValidator(lambda v: _numbers(v, ndim)),
                     PlainSerializer(lambda a: a.tolist(), when_used="json"), WithJsonSchema(schema)]


_VALUES_SCHEMA = {"type": "array", "minItems": 1, "items": {"type": "number"}}
_POINTS_SCHEMA = {"type": "array", "minItems": 1, "items": _VALUES_SCHEMA}
Points = _array_type(2, _POINTS_SCHEMA)
Values = _array_type(1, _VALUES_SCHEMA)


def _leaves(value: Any, rank: int) -> None:
    """Check a nested list is `rank` levels of non-empty arrays with numbers at the bottom
    (ValueError or the located element error of `_numbers`, the first problem only)."""
    stack: list[tuple[Any, int, tuple[int, ...]]] = [(value, 0, ())]
    while stack:
        item, level, where = stack.pop()
        if level < rank:
            if not isinstance(item, list) or not item:
                raise ValueError(f"must be a non-empty array of rank {rank} (an empty or non-array entry at "
                                 f"index {list(where)})")
            stack.extend((child, level + 1, (*where, i)) for i, child in enumerate(item))
        elif type(item) not in _NUMBER_TYPES:
            raise PydanticCustomError("array_element", "must be a number, got {kind}",
                                      {"kind": _json_type(type(item)), "where": where})


def _tensor(value: Any) -> np.ndarray:
    """Points (N, d), signals (N, P, C) or images (N, H, W, C): the rank follows the nesting of the
    first entry; strict numbers, equal lengths, finite."""
    if isinstance(value, np.ndarray):
        if not 2 <= value.ndim <= 4:
            raise ValueError(f"must be an array of rank 2, 3 or 4, got rank {value.ndim}")
        return _finite(value)
    rank, first = 0, value
    while isinstance(first, list) and first:
        rank, first = rank + 1, first[0]
    if rank <= 2:
        return _numbers(value, 2)  # its exact messages for points
    if rank > 4:
        raise ValueError(f"must be points (N, d), signals (N, P, C) or images (N, H, W, C), got rank {rank}")
    _leaves(value, rank)
    try:
        array = np.array(value, dtype=np.float64)
    except OverflowError:
        raise ValueError("holds an integer too large for float64") from None
    except ValueError:
        raise ValueError(f"must be a rectangular array of rank {rank} (ragged: entries of different lengths)") from None
    return _finite(array)


_TENSOR_SCHEMA = {"anyOf": [_POINTS_SCHEMA, {"type": "array", "minItems": 1, "items": _POINTS_SCHEMA},
                            {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": 1,
                                                                       "items": _POINTS_SCHEMA}}]}
# points (N, d) for the dense kinds, signals (N, P, C) or images (N, H, W, C) for the conv kinds
Inputs = Annotated[np.ndarray, PlainValidator(_tensor), PlainSerializer(lambda a: a.tolist(), when_used="json"),
                   WithJsonSchema(_TENSOR_SCHEMA)]


def _targets(value: Any) -> np.ndarray:
    """(n,) or (n, k): the rank follows the first entry."""
    if isinstance(value, np.ndarray):
        return _numbers(value, value.ndim)
    return _numbers(value, 2 if isinstance(value, list) and value and isinstance(value[0], list) else 1)


Targets = Annotated[np.ndarray, PlainValidator(_targets), PlainSerializer(lambda a: a.tolist(), when_used="json"),
                    WithJsonSchema({"anyOf": [_VALUES_SCHEMA, _POINTS_SCHEMA]})]


Seed = Annotated[int, Strict(), Field(ge=0, lt=2**32,
                                      description="Random seed (explicit: equal requests give equal results).")]


def _unique(items: list[str]) -> list[str]:
    """Unique entries, in one canonical order (so equal requests have one job id)."""
    if len(set(items)) != len(items):
        raise ValueError("entries must be unique")
    return sorted(items)


Kernels = Annotated[list[Kernel], Field(min_length=1, max_length=2, description="Which kernels to compute.",
                                         json_schema_extra={"uniqueItems": True}), AfterValidator(_unique)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, arbitrary_types_allowed=True)


CONV_OPERATIONS = ("POST /v1/kernels", "POST /v1/empirical-kernels", "POST /v1/train")  # those that take conv kinds


class ArchitectureSpec(Model):
    """A ResNet (paper eq. 6) or MLP (eq. 1); exactly the engine's `Architecture` keys."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "resnet", "depth": 5, "alpha": 0.1}]})
    # the engine's tuples, expanded by Literal at run time (mypy cannot); tests check the lists are equal
    kind: Literal[KINDS] = Field(description="Network family.")  # type: ignore[valid-type]
    depth: int = Field(ge=1, le=MAX_DEPTH, description="Residual blocks L (resnet) or hidden layers (mlp). Also "
                       "at most the service's depth limit, and shallow enough that the kernel of a unit input stays "
                       "within [1e-300, 1e300] (the error names the layer where it would not).")
    activation: Literal[ACTIVATIONS] = Field("relu", description="Activation phi.")  # type: ignore[valid-type]
    sigma_w: Number = Field(1.0, gt=0, le=MAX_SCALE, description="Weight scale sigma_w.")
    sigma_v: Number = Field(1.0, gt=0, le=MAX_SCALE, description="Residual-branch weight scale sigma_v.")
    alpha: Number = Field(1.0, ge=0, le=MAX_SCALE, description="Residual-branch scale alpha (ignored by the MLP).")
    sigma_b: Number = Field(0.0, ge=0, le=MAX_SCALE, description="Bias scale (0 = no biases).")

    @model_validator(mode="before")
    @classmethod
    def _dense_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") in CONV_KINDS:
            raise field_error("kind", f"kind {data['kind']!r} (a convolutional network) is accepted by "
                              f"{', '.join(CONV_OPERATIONS)} only; this operation takes the kinds {list(KINDS)}")
        return data

    @model_validator(mode="after")
    def _in_range(self) -> ArchitectureSpec:
        Architecture.from_dict(self.model_dump())  # the engine's checks (plain numpy): kernel within float64
        return self

    @model_validator(mode="after")
    def _canonical(self) -> ArchitectureSpec:
        """The MLP has no residual branch: its alpha and sigma_v are set to their defaults."""
        if self.kind == "mlp":
            self.alpha, self.sigma_v = 1.0, 1.0
        return self


class ConvArchitectureSpec(Model):
    """A convolutional ResNet or CNN (circular padding, stride 1, neural-tangents' stax semantics,
    docs/engine.md); exactly the engine's `ConvArchitecture` keys."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"kind": "conv-resnet", "depth": 5, "alpha": 0.1, "filter_size": [3, 3], "readout": "pool"}]})
    kind: Literal[CONV_KINDS] = Field(description="Network family: conv-resnet or cnn.")  # type: ignore[valid-type]
    depth: int = Field(ge=1, le=MAX_DEPTH, description="Residual blocks L (conv-resnet) or conv layers (cnn). Also at "
                       "most the service's depth limit.")
    activation: Literal[ACTIVATIONS] = Field("relu", description="Activation phi.")  # type: ignore[valid-type]
    sigma_w: Number = Field(1.0, gt=0, le=MAX_SCALE, description="Weight scale sigma_w (convs and readout).")
    sigma_v: Number = Field(1.0, gt=0, le=MAX_SCALE, description="Residual-branch weight scale sigma_v.")
    alpha: Number = Field(1.0, ge=0, le=MAX_SCALE, description="Residual-branch scale alpha (ignored by the cnn).")
    sigma_b: Number = Field(0.0, ge=0, le=MAX_SCALE, description="Bias scale (0 = no biases).")
    filter_size: list[Annotated[int, Field(ge=1, le=MAX_FILTER)]] = Field(
        [3, 3], min_length=1, max_length=2, description="Filter window: [q] for signals x (N, P, C), [q1, q2] for "
        "images x (N, H, W, C); each at most the input's size along its axis.")
    readout: Literal[READOUTS] = Field("pool", description="Global average pooling ('pool') or 'flatten', then "  # type: ignore[valid-type]
                                       "a dense readout.")

    @model_validator(mode="after")
    def _in_range(self) -> ConvArchitectureSpec:
        spec = self.model_dump()
        ConvArchitecture.from_dict(spec)  # the engine's checks (plain numpy)
        crossed = out_of_range_depth(DENSE_KIND[self.kind], self.depth, self.activation, self.sigma_w, self.sigma_v,
                                     self.alpha, self.sigma_b)
        if crossed is not None:
            raise ValueError(f"depth {self.depth} is too deep for this architecture: its kernel would leave float64's "
                             f"range at layer {crossed[0]} (kernel of a unit input {crossed[1]:.3g})")
        return self

    @model_validator(mode="after")
    def _canonical(self) -> ConvArchitectureSpec:
        """The CNN has no residual branch: its alpha and sigma_v are set to their defaults."""
        if self.kind == "cnn":
            self.alpha, self.sigma_v = 1.0, 1.0
        return self


# A pixel's variance follows the dense recursion of these kinds (a conv averages variances over its window)
DENSE_KIND = {"conv-resnet": "resnet", "cnn": "mlp"}

ARCHITECTURE_KINDS = (*KINDS, *CONV_KINDS)  # the tags of the union (left out of error locations)
AnyArchitecture = Annotated[ArchitectureSpec | ConvArchitectureSpec, Field(discriminator="kind")]


# the points' bound (`check_scale`), in their fields' descriptions
POINT_SCALE = (" Each point's x.x/d at most 1e300, and small enough that the kernel stays within float64 (422 naming "
               "the field).")


def field_error(field: str, message: str) -> PydanticCustomError:
    """A validation error located at `field` (a dotted path below the model raising it), for
    checks across fields; `service.http.bodies` appends the path to the error's location."""
    return PydanticCustomError("value_error", message.replace("{", "(").replace("}", ")"),
                               {"where": tuple(int(p) if p.isdigit() else p for p in field.split("."))})


def largest_scale(x: np.ndarray) -> float:
    """The largest x.x / d of x's rows (inf when it overflows float64); for signals and images
    (rank 3, 4), the largest pixel's x[p].x[p] / C."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.max(np.einsum("...i,...i->...", x, x)) / x.shape[-1])


def check_scale(arch: ArchitectureSpec | ConvArchitectureSpec, *arrays: tuple[str, np.ndarray | None]) -> None:
    """Refuse points whose kernel would overflow float64: the architecture is checked at unit
    inputs (x.x/d = 1); larger inputs take the kernel higher, so the largest x.x/d of each point
    set is checked too (`engine.kernel_scale.out_of_range_depth` at that scale)."""
    for name, x in arrays:
        if x is None:
            continue
        q = largest_scale(x)
        if not np.isfinite(q) or q > LARGEST:
            raise field_error(name, f"a point's x.x/d is {q:.3g}: points must have x.x/d <= {LARGEST:.0e}; scale "
                              "the points down")
        crossed = out_of_range_depth(DENSE_KIND.get(arch.kind, arch.kind), arch.depth, arch.activation, arch.sigma_w,
                                     arch.sigma_v, arch.alpha, arch.sigma_b, q) if q > 1 else None
        if crossed is not None:
            raise field_error(name, f"points with x.x/d up to {q:.3g} take the kernel to {crossed[1]:.3g} at layer "
                              f"{crossed[0]}, beyond float64's range [1e-300, 1e300]: scale the points down")


def check_inputs(arch: ArchitectureSpec | ConvArchitectureSpec, *arrays: tuple[str, np.ndarray | None]) -> None:
    """The input sets of a request for `arch`, as (field name, array or None): points (N, d) of one
    dimension d for a dense kind; for a conv kind, signals (N, P, C) or images (N, H, W, C) of the rank
    its filter_size asks, no filter larger than an input, each set shaped as the first but for N
    (`engine.conv.architecture.check_conv_points`); then their scale (`check_scale`). 422s naming the
    field (points of different dimensions: the body)."""
    present = [(name, x) for name, x in arrays if x is not None]
    if isinstance(arch, ConvArchitectureSpec):
        conv = ConvArchitecture.from_dict(arch.model_dump())
        for name, x in present:
            try:
                check_conv_points(x, conv, name)
            except ValueError as exc:
                raise field_error(name, str(exc)) from None
        (first, a), *others = present
        for name, x in others:
            if x.shape[1:] != a.shape[1:]:
                raise field_error(name, f"{name} must have {first}'s shape but for N: got {first} {list(a.shape)}, "
                                  f"{name} {list(x.shape)}")
    else:
        for name, x in present:
            if x.ndim != 2:
                raise field_error(name, f"{name} must be points (N, d) for kind {arch.kind!r}, got an array of "
                                  f"rank {x.ndim}; signals and images take the kinds 'conv-resnet' and 'cnn'")
        same_dimension(*arrays)
    check_scale(arch, *arrays)


def same_dimension(*pairs: tuple[str, np.ndarray | None]) -> None:
    present = [(name, x.shape[1]) for name, x in pairs if x is not None]
    if len({d for _, d in present}) > 1:
        raise ValueError("points must share one dimension d; got " + ", ".join(f"{n} d={d}" for n, d in present))


CIRCLE = [[1.0, 0.0], [0.5, 0.8660254037844386], [-0.5, 0.8660254037844386], [-1.0, 0.0]]


class NetworkFields(Model):
    """What finite networks take: the architecture (a dense kind on points, or a conv kind on
    signals or images, its width the channels of every hidden layer) and their initialisation."""

    architecture: AnyArchitecture
    width: int = Field(ge=1, description="Hidden width n (channels, for the conv kinds).")
    n_init: int = Field(1, ge=1, description="Independent initialisations.")
    seed: Seed = 0
    parametrization: Parametrization = Field("ntk", description=(
        "Initialisation: 'ntk' (N(0, 1), scaled by sigma / sqrt(fan_in)), 'standard' (LeCun, std sigma / "
        "sqrt(fan_in)), 'xavier' (Glorot Gaussian, std sigma sqrt(2 / (fan_in + fan_out)), the paper's Figs. 3-4), "
        "'pytorch' (torch.nn.Linear's uniform, a bias in every layer, the paper's Fig. 5). The conv kinds take 'ntk' "
        "only."))

    def check_conv_network(self, name: str, x: np.ndarray, jacobian_norms: bool) -> None:
        """For a conv kind, after `check_inputs`: what the engine's finite conv nets support
        (`engine.conv.architecture.check_network`) for inputs shaped as `x` (the field `name`),
        and no Jacobian norms (the engine has none for conv nets). 422s naming the field."""
        if not isinstance(self.architecture, ConvArchitectureSpec):
            return
        if self.parametrization not in PARAMETRIZATIONS:
            raise field_error("parametrization", f"parametrization {self.parametrization!r} is not available for "
                              f"the conv kinds, which take {list(PARAMETRIZATIONS)}")
        if jacobian_norms:
            raise field_error("jacobian_norms", "jacobian_norms is not available for the conv kinds (the engine "
                              "has no input Jacobians of conv nets): set it to false")
        try:  # the input shape and the parametrization are valid by now: what is left is the width
            check_network(ConvArchitecture.from_dict(self.architecture.model_dump()), self.width, x.shape[1:],
                          self.parametrization)
        except ValueError as exc:
            raise field_error("width", f"{exc} ({name} {list(x.shape)})") from None


# read as numpy
ARRAY_FIELDS = ("x", "x2", "x_train", "y_train", "x_test", "train_angles", "targets", "samples", "points")

Matrix = list[list[float]]  # a result's 2-D array in JSON
Arrays = dict[str, np.ndarray]  # a worker function's input or result arrays, by field name


class Progress(Protocol):
    """What a worker function reports to: progress(fraction, message), and whether to stop
    (polled between tiles, chunks or steps; then it raises `engine.Cancelled`)."""

    def __call__(self, fraction: float, message: str) -> None: ...

    def should_stop(self) -> bool: ...


# A worker function: (the request's scalar parameters, its input arrays, the folder to write large
# arrays into, progress) -> (the result's values, its arrays). It imports the engine (JAX) itself.
Run = Callable[[dict[str, Any], Arrays, Path, Progress], tuple[dict[str, Any], Arrays]]

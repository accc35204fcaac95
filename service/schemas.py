"""Request and response models: the JSON contract of the service.

Field names equal the engine's keywords; unknown keys and non-finite numbers are refused.
Limits that depend on the settings (points, depth, ...) are checked in `limits.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

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

Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Kernel = Literal["nngp", "ntk"]
Parametrization = Literal["ntk", "standard", "xavier", "pytorch"]
_NUMBER_TYPES = {int, float}


def _numbers(value: Any, ndim: int) -> np.ndarray:
    """A JSON array of numbers (ndim 1) or of equal-length rows of numbers (ndim 2) as a
    float64 array, its shape checked before its numbers; strict (no strings, booleans,
    null) and finite. Raises ValueError with the first problem only."""
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
    finite = np.isfinite(array)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise PydanticCustomError("finite_number", "must be a finite number (NaN, Infinity and numbers beyond "
                                  "float64 are refused)", {"where": where})
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


def _targets(value: Any) -> np.ndarray:
    """(n,) or (n, k): the rank follows the first entry."""
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


class ArchitectureSpec(Model):
    """A ResNet (paper eq. 6) or MLP (eq. 1); exactly the engine's `Architecture` keys."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "resnet", "depth": 5, "alpha": 0.1}]})
    kind: Literal[KINDS] = Field(description="Network family.")
    depth: int = Field(ge=1, le=MAX_DEPTH, description="Residual blocks L (resnet) or hidden layers (mlp). Also "
                       "at most the service's depth limit, and shallow enough that the kernel of a unit input stays "
                       "within [1e-300, 1e300] (the error names the layer where it would not).")
    activation: Literal[ACTIVATIONS] = Field("relu", description="Activation phi.")
    sigma_w: Number = Field(1.0, gt=0, le=MAX_SCALE, description="Weight scale sigma_w.")
    sigma_v: Number = Field(1.0, gt=0, le=MAX_SCALE, description="Residual-branch weight scale sigma_v.")
    alpha: Number = Field(1.0, ge=0, le=MAX_SCALE, description="Residual-branch scale alpha (ignored by the MLP).")
    sigma_b: Number = Field(0.0, ge=0, le=MAX_SCALE, description="Bias scale (0 = no biases).")

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


def _same_dimension(*pairs: tuple[str, np.ndarray | None]) -> None:
    present = [(name, x.shape[1]) for name, x in pairs if x is not None]
    if len({d for _, d in present}) > 1:
        raise ValueError("points must share one dimension d; got " + ", ".join(f"{n} d={d}" for n, d in present))


CIRCLE = [[1.0, 0.0], [0.5, 0.8660254037844386], [-0.5, 0.8660254037844386], [-1.0, 0.0]]


class KernelsRequest(Model):
    """Analytic NNGP / NTK Gram matrices K(x, x2)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"x": CIRCLE, "architecture": {"kind": "resnet", "depth": 5, "alpha": 0.1}, "kernels": ["nngp", "ntk"]}]})
    x: Points = Field(description="Points (N1, d).")
    x2: Points | None = Field(None, description="Second point set (N2, d); null means x (symmetric).")
    architecture: ArchitectureSpec
    kernels: Kernels = ["nngp", "ntk"]

    @model_validator(mode="after")
    def _dimensions(self) -> KernelsRequest:
        _same_dimension(("x", self.x), ("x2", self.x2))
        return self


class RegressionRequest(Model):
    """Kernel regression: the interpolant (t = null), the GD mean at time t, the GP posterior."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [  # the variance is the NNGP's
        {"properties": {"return_variance": {"const": False}}},
        {"required": ["kernel"], "properties": {"kernel": {"const": "nngp"}}}]})

    x_train: Points = Field(description="Training points (n, d).")
    y_train: Targets = Field(description="Targets (n,) or (n, k).")
    x_test: Points = Field(description="Test points (m, d).")
    architecture: ArchitectureSpec
    kernel: Kernel = "ntk"
    ridge: Number = Field(1e-10, ge=0, description=(
        "Relative: ridge x mean(diag K_train) is added to the training Gram's diagonal (the GP's noise variance). "
        "Coincident training points are merged; with different targets they are a 422 naming them."))
    t: Number | None = Field(None, ge=0, description="GD training time; null = infinity (the interpolant).")
    return_variance: bool = Field(False, description="NNGP posterior variance (needs kernel 'nngp').")

    @model_validator(mode="after")
    def _shapes(self) -> RegressionRequest:
        _same_dimension(("x_train", self.x_train), ("x_test", self.x_test))
        if len(self.y_train) != len(self.x_train):
            raise ValueError(f"y_train has {len(self.y_train)} rows, x_train {len(self.x_train)}")
        if self.return_variance and self.kernel != "nngp":
            raise ValueError("return_variance needs kernel 'nngp' (the posterior variance is the NNGP's)")
        return self


class SmoothnessRequest(Model):
    """The paper's circle experiment: interpolate samples of a target on the unit circle
    with each architecture's kernel and measure the interpolant's smoothness mu."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"architectures": [
        {"kind": "mlp", "depth": 5}, {"kind": "resnet", "depth": 5, "alpha": 1.0},
        {"kind": "resnet", "depth": 5, "alpha": 0.1}], "n_train": 6}],
        # the rules below as JSON Schema says them: one training set, or samples alone
        "anyOf": [
            {"required": ["n_train"], "properties": {"n_train": {"type": "integer"}, "train_angles": {"type": "null"}}},
            {"required": ["train_angles"], "properties": {"train_angles": {"type": "array"},
                                                          "n_train": {"type": "null"}}},
            {"required": ["samples"], "properties": {"samples": {"type": "array"}, "architectures": {"maxItems": 0},
                                                     "measure": {"const": "curvature"}}}]})
    architectures: list[ArchitectureSpec] = Field([], description="Architectures to compare.")
    n_train: int | None = Field(None, ge=1, description="The paper's n equispaced training angles.")
    train_angles: Values | None = Field(None, description="Training angles (radians), instead of n_train.")
    targets: Values | None = Field(None, description="Values at the training angles; null = 0.5 cos b + sin 4b.")
    kernel: Kernel = "ntk"
    ridge: Number = Field(1e-10, ge=0, description="Relative to the training Gram's mean diagonal (as for regression).")
    n_grid: int = Field(4096, ge=8, description="Uniform grid on which mu is measured.")
    measure: Literal["curvature", "rkhs"] = Field("curvature", description="mu of eq. 22, or the slides' RKHS ratio.")
    bandwidth: Number = Field(0.5, gt=0, description="RKHS measure: Gaussian bandwidth (radians).")
    cutoff: int | None = Field(None, ge=1, description="RKHS measure: highest harmonic kept (null = automatic).")
    samples: Values | None = Field(None, description="Also measure these values of a function on the uniform grid.")

    @model_validator(mode="after")
    def _training_set(self) -> SmoothnessRequest:
        if not self.architectures and self.samples is None:
            raise ValueError("give architectures, samples, or both")
        if self.architectures and (self.n_train is None) == (self.train_angles is None):
            raise ValueError("give exactly one of n_train and train_angles")
        n = self.n_train if self.train_angles is None else len(self.train_angles)
        if self.targets is not None and len(self.targets) != n:
            raise ValueError(f"targets has {len(self.targets)} values for {n} training angles")
        if self.measure == "rkhs" and self.samples is not None and self.architectures == []:
            raise ValueError("the rkhs measure of samples needs the training set: give architectures too")
        if self.measure == "curvature":  # the RKHS parameters do not apply: one job id whatever they are
            self.bandwidth, self.cutoff = 0.5, None
        return self


class BoundsRequest(Model):
    """The paper's bounds on ||df/dx|| at initialisation (eqs. 18, 20, 21)."""

    architecture: ArchitectureSpec
    width: int = Field(ge=1)
    input_dim: int = Field(ge=1)
    c_phi: Number = Field(1.0, gt=0, description="The activation's Lipschitz constant.")


class SpectrumRequest(Model):
    """Kernel profile on the circle, its Fourier spectrum, and optionally a Gram spectrum."""

    architecture: ArchitectureSpec
    kernel: Kernel = "ntk"
    n_grid: int = Field(1024, ge=8, multiple_of=2, description="Uniform grid on the circle (even).")
    normalize: bool = Field(True, description="Divide the profile by its peak (unit peak, as in Fig. 2).")
    x: Points | None = Field(None, description="Points whose Gram eigenvalues and condition number to return.")


class NetworkFields(Model):
    architecture: ArchitectureSpec
    width: int = Field(ge=1, description="Hidden width n.")
    n_init: int = Field(1, ge=1, description="Independent initialisations.")
    seed: Seed = 0
    parametrization: Parametrization = Field("ntk", description=(
        "Initialisation: 'ntk' (N(0, 1), scaled by sigma / sqrt(fan_in)), 'standard' (LeCun, std sigma / "
        "sqrt(fan_in)), 'xavier' (Glorot Gaussian, std sigma sqrt(2 / (fan_in + fan_out)), the paper's Figs. 3-4), "
        "'pytorch' (torch.nn.Linear's uniform, a bias in every layer, the paper's Fig. 5)."))


class EmpiricalKernelsRequest(NetworkFields):
    """Empirical NTK of each network and the ensemble's Monte Carlo NNGP, at initialisation."""

    x: Points
    x2: Points | None = None
    kernels: Kernels = ["ntk"]
    jacobian_norms: bool = Field(False, description="Also ||df/dx|| at each x for each network.")

    @model_validator(mode="after")
    def _dimensions(self) -> EmpiricalKernelsRequest:
        _same_dimension(("x", self.x), ("x2", self.x2))
        return self


class TrainRequest(NetworkFields):
    """Train networks by GD / SGD / Adam; loss curves, predictions, weight movement, NTK drift."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [  # lr 'auto' needs the NTK parametrisation
        {"properties": {"parametrization": {"const": "ntk"}}},
        {"required": ["lr"], "properties": {"lr": {"type": "number"}}}]})

    x_train: Points
    y_train: Values
    x_test: Points | None = None
    optimizer: Literal["gd", "sgd", "adam"] = "gd"
    lr: Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)] | Literal["auto"] = Field(
        "auto", description="Step size, or 'auto' (half the NTK's GD bound; NTK parametrisation only).")
    steps: int = Field(1000, ge=1)
    batch_size: int | None = Field(None, ge=1, description="null = full batch (SGD: 1).")
    record_every: int | None = Field(None, ge=1, description="Steps between records (default steps / 20).")
    track_ntk: bool = Field(False, description="Record the NTK drift on x_train.")
    return_ntk: bool = Field(False, description="Return the empirical NTK on x_train at init and after training.")
    jacobian_norms: bool = Field(False, description="||df/dx|| after training, at x_test (or x_train).")

    @model_validator(mode="after")
    def _shapes(self) -> TrainRequest:
        _same_dimension(("x_train", self.x_train), ("x_test", self.x_test))
        if len(self.y_train) != len(self.x_train):
            raise ValueError(f"y_train has {len(self.y_train)} values, x_train {len(self.x_train)} points")
        if self.batch_size is not None and self.batch_size > len(self.x_train):
            raise ValueError(f"batch_size {self.batch_size} exceeds the {len(self.x_train)} training points")
        if self.lr == "auto" and self.parametrization != "ntk":
            raise ValueError("lr 'auto' needs the NTK parametrisation; give a number")
        # the engine's defaults made explicit, so implicit and explicit requests share one job id
        if self.record_every is None:
            self.record_every = max(1, self.steps // 20)
        if self.batch_size is None and self.optimizer == "sgd":
            self.batch_size = 1
        if self.batch_size == len(self.x_train):
            self.batch_size = None
        return self


class ExperimentRequest(Model):
    """One of the paper's experiments (GET /v1/experiments lists them and their parameters)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"scale": "quick", "parameters": {"depths": [5]}}]})
    scale: Literal["quick", "paper"] = Field("quick", description="Parameter set: 'quick' (CPU) or the paper's.")
    parameters: dict[str, Any] = Field({}, description="Overrides of the scale's parameters, by name.")


class ExperimentInfo(BaseModel):
    name: str
    title: str
    description: str
    quick: dict[str, Any] = Field(description="Parameters at the quick scale (the default).")
    paper: dict[str, Any] = Field(description="Parameters at the paper's scale.")
    parameters: dict[str, dict[str, Any]] = Field(description=(
        "Each parameter's declaration: type ('int', 'float', 'str', 'bool' or 'list[...]'), minimum / maximum / "
        "exclusive_minimum, choices, min_items / max_items / unique for lists, nullable, and both scales' values."))
    cost: dict[str, dict[str, int]] = Field(description=(
        "Cost estimates at both scales: kernel_entry_layers (Gram entries x depth), training_weight_steps "
        "(networks x steps x samples per step x weights), output_bytes (float64 arrays returned)."))


OPERATIONS: dict[str, type[Model]] = {
    "kernels": KernelsRequest, "regression": RegressionRequest, "smoothness": SmoothnessRequest,
    "bounds": BoundsRequest, "spectrum": SpectrumRequest, "empirical-kernels": EmpiricalKernelsRequest,
    "train": TrainRequest,
}
BODY_MODELS: tuple[type[Model], ...] = (*OPERATIONS.values(), ExperimentRequest)  # parsed by service.bodies
ARRAY_FIELDS = ("x", "x2", "x_train", "y_train", "x_test", "train_angles", "targets", "samples")


# ---------------------------------------------------------------- responses

JobState = Literal["queued", "running", "succeeded", "failed", "canceled"]


class JobError(BaseModel):
    status: int = Field(description="The HTTP status this failure maps to.")
    title: str
    detail: str


class ArraySpec(BaseModel):
    shape: list[int]
    dtype: str
    url: str = Field(description="Download link (add Accept: application/x-npy for binary).")


class ResultManifest(BaseModel):
    values: dict[str, Any] = Field(description="The result's non-array fields.")
    arrays: dict[str, ArraySpec]


class JobStatus(BaseModel):
    id: str = Field(description="SHA-256 of the canonical request and the engine's numerics version.")
    operation: str
    status: JobState
    progress: float = Field(ge=0, le=1)
    message: str
    attempts: int
    created_at: float = Field(description="Unix time (s).")
    started_at: float | None
    finished_at: float | None
    error: JobError | None
    links: dict[str, str]
    result: ResultManifest | None = Field(None, description="A succeeded job's values and arrays.")


class JobList(BaseModel):
    jobs: list[JobStatus]
    total: int
    next: str | None = Field(description="The next page, or null.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="Each invalid field: {field, message}.")

Matrix = list[list[float]]


class KernelsResult(BaseModel):
    nngp: Matrix | None = None
    ntk: Matrix | None = None
    shape: list[int]


class RegressionResult(BaseModel):
    mean: list[float] | Matrix
    variance: list[float] | None = None


class MuResult(BaseModel):
    architecture: ArchitectureSpec | None = None
    mu: float
    norm_f: float | None = None
    norm_gauss: float | None = None
    bandwidth: float | None = None
    cutoff: int | None = None


class SmoothnessResult(BaseModel):
    results: list[MuResult]
    samples: MuResult | None = None
    angles: list[float]
    interpolants: Matrix | None = None
    train_angles: list[float] | None = None
    train_values: list[float] | None = None


class BoundsResult(BaseModel):
    bound: float
    bound_mlp: float
    bound_resnet: float
    ratio_to_mlp: float
    alpha_threshold: float | None


class SpectrumResult(BaseModel):
    angles: list[float]
    profile: list[float]
    frequencies: list[float]
    magnitudes: list[float]
    eigenvalues: list[float] | None = None
    condition: float | None = Field(None, description="lambda_max / lambda_min; null when lambda_min <= 0.")


class EmpiricalKernelsResult(BaseModel):
    ntk: list[Matrix] | None = Field(None, description="(n_init, N1, N2): each network's NTK.")
    ntk_mean: Matrix | None = None
    nngp: Matrix | None = Field(None, description="(N1, N2): E[f(x) f(x2)] over the ensemble.")
    jacobian_norms: Matrix | None = Field(None, description="(n_init, N1).")
    shape: list[int]


class TrainResult(BaseModel):
    steps: list[float]
    loss: Matrix = Field(description="(n_init, R) mean-squared loss at each recorded step.")
    predictions: list[Matrix] | None = Field(None, description="(R, n_init, m) on x_test.")
    mean_prediction: Matrix | None = None
    weight_movement: list[float]
    ntk_drift: Matrix | None = None
    ntk_initial: list[Matrix] | None = None
    ntk_final: list[Matrix] | None = None
    jacobian_norms: Matrix | None = None
    lr: float
    lr_bound: float | None = None


RESULTS: dict[str, type[BaseModel]] = {
    "kernels": KernelsResult, "regression": RegressionResult, "smoothness": SmoothnessResult,
    "bounds": BoundsResult, "spectrum": SpectrumResult, "empirical-kernels": EmpiricalKernelsResult,
    "train": TrainResult,
}

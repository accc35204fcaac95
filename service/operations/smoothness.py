"""POST /v1/smoothness: the paper's circle experiment, mu of each architecture's interpolant; or, with
`points` and `targets`, the same on the unit sphere S^(d-1) of R^d (engine.sphere_smoothness)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from engine.sphere import nodes_for
from service.operations.cost import (
    CHOLESKY_S_PER_N3,
    ELEMENTWISE_S,
    LSTSQ_S_PER_N3,
    RKHS_MIN_WEIGHT,
    Cost,
    Term,
    count_rows,
    floats,
    input_numbers,
    kernel_seconds,
    kernel_tiles,
    peak_phase,
    worker_base,
)
from service.operations.fields import (
    ArchitectureSpec,
    Arrays,
    Kernel,
    Matrix,
    Model,
    Number,
    Points,
    Progress,
    Values,
    field_error,
)

BANDWIDTH = (1e-6, 7.0)  # the RKHS bandwidth's range (radians)
MAX_CUTOFF, MAX_CUTOFF_BANDWIDTH = 10**6, 36.0  # exp(-36^2 / 2) ~ 1e-281: every weight kept is a normal float64
MAX_SPHERE_DIM = 64  # d of the points' sphere S^(d-1), as /v1/spectrum's sphere_dim
UNIT_TOLERANCE = 1e-9  # | |x| - 1 | of each of `points`' rows
MAX_CURVATURE_DEGREE = 511  # d > 3: engine.sphere_smoothness's (mirrored without JAX; tests check)


class SmoothnessRequest(Model):
    """The paper's circle experiment: interpolate samples of a target on the unit circle
    with each architecture's kernel and measure the interpolant's smoothness mu."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"architectures": [
        {"kind": "mlp", "depth": 5}, {"kind": "resnet", "depth": 5, "alpha": 1.0},
        {"kind": "resnet", "depth": 5, "alpha": 0.1}], "n_train": 6}]})
    architectures: list[ArchitectureSpec] = Field([], description=(
        "Architectures to compare. Give architectures, samples, or both (else 422)."))
    n_train: int | None = Field(None, ge=2, description=(
        "The paper's n equispaced training angles (at least 2: both -pi and pi are among them). With "
        "architectures, exactly one of n_train and train_angles (else 422)."))
    train_angles: Values | None = Field(None, description="Training angles (radians), instead of n_train.")
    points: Points | None = Field(None, description=(
        "Training points on the unit sphere S^(d-1) of R^d, instead of n_train and train_angles: an (n, d) matrix, "
        "n >= 2, 2 <= d <= 64, each row of unit Euclidean norm (within 1e-9, else 422 naming points.<i>); needs "
        "targets. The interpolants are evaluated on a set of the sphere sized by n_grid (answered as grid_points): "
        "d = 2 the uniform circle grid of n_grid angles; d = 3 a Gauss-Legendre x uniform product grid of "
        "n_lat = floor(sqrt(n_grid / 2)) latitudes and 2 n_lat longitudes; d > 3 n_grid uniform random points "
        "(seed 0). The curvature measure: on the set's harmonics for d = 2 and 3; for d > 3 the exact harmonic sum "
        "to degree min(n_grid / 2 - 1, 511) (answered as each result's degree)."))
    targets: Values | None = Field(None, description="Values at the training angles (null = 0.5 cos b + sin 4b), or "
                                   "at the points (required with points, one per row). Not all zero (mu is "
                                   "undefined for the zero function).")
    kernel: Kernel = "ntk"
    ridge: Number = Field(1e-10, ge=0, description="Relative to the training Gram's mean diagonal (as for regression).")
    n_grid: int = Field(4096, ge=8, multiple_of=2, description=(
        "Uniform grid on which mu is measured (even); with points, the size of the set on the sphere (see points)."))
    measure: Literal["curvature", "rkhs", "both"] = Field("curvature", description=(
        "mu of eq. 22 (on the sphere: ||Laplace-Beltrami f|| / ||f|| on the grid's harmonics), the slides' RKHS "
        "ratio (on the sphere: the heat kernel's, exp(-t k (k + d - 2)) with t = bandwidth^2 / 2), or both: each "
        "result answers mu_curvature and mu_rkhs, and mu is the measure asked for (null for both)."))
    bandwidth: Number = Field(0.5, ge=BANDWIDTH[0], le=BANDWIDTH[1], description=(
        "RKHS measure: Gaussian bandwidth (radians), in [1e-6, 7]: the automatic cutoff keeps the harmonics k whose "
        "weight exp(-(bandwidth k)^2 / 2) is at least 1e-12, and beyond 7 not even k = 1 is kept."))
    cutoff: int | None = Field(None, ge=1, le=MAX_CUTOFF, description=(
        "RKHS measure: highest harmonic kept (null = automatic); at most 1e6, and cutoff x bandwidth at most 36 (the "
        "highest harmonic's weight exp(-(bandwidth cutoff)^2 / 2) stays above 1e-281, so the norms stay finite)."))
    samples: Values | None = Field(None, description=(
        "Also measure these values of a function on the uniform grid: an even number of them, at least 4, not all "
        "zero. The rkhs measure of samples needs architectures too (their training set; else 422)."))

    @field_validator("samples", "targets")
    @classmethod
    def _not_zero(cls, values: np.ndarray | None, info: ValidationInfo) -> np.ndarray | None:
        if values is not None and info.field_name == "samples" and (len(values) < 4 or len(values) % 2):
            raise ValueError(f"must be an even number of values, at least 4 (a uniform grid), got {len(values)}")
        if values is not None and not values.any():
            raise ValueError("values are all zero: mu is undefined for the zero function")
        return values

    @model_validator(mode="after")
    def _training_set(self) -> SmoothnessRequest:
        if self.points is not None:
            return self._sphere()
        if not self.architectures and self.samples is None:
            raise ValueError("give architectures, samples, or both")
        if self.architectures and (self.n_train is None) == (self.train_angles is None):
            raise ValueError("give exactly one of n_train and train_angles")
        n = self.n_train if self.train_angles is None else len(self.train_angles)
        if self.targets is not None and len(self.targets) != n:
            raise ValueError(f"targets has {len(self.targets)} values for {n} training angles")
        if self.measure != "curvature" and self.samples is not None and self.architectures == []:
            raise ValueError("the rkhs measure of samples needs the training set: give architectures too")
        return self._canonical()

    def _canonical(self) -> SmoothnessRequest:
        d = 2 if self.points is None else self.points.shape[1]
        if self.measure != "curvature" and self.cutoff is not None:
            c, b = self.cutoff, self.bandwidth  # the weight exp(-b^2 c (c + d - 2) / 2) must stay above 1e-281
            if c * b > MAX_CUTOFF_BANDWIDTH or b * b * c * (c + d - 2) > MAX_CUTOFF_BANDWIDTH**2:
                raise field_error("cutoff", f"cutoff x bandwidth is {c * b:.3g} (d = {d}): the weight "
                                  f"exp(-bandwidth^2 k (k + d - 2) / 2) of harmonic {c} underflows float64 (over "
                                  f"{MAX_CUTOFF_BANDWIDTH} on the circle); lower cutoff or bandwidth")
        if self.measure == "curvature":  # the RKHS parameters do not apply: one job id whatever they are
            self.bandwidth, self.cutoff = 0.5, None
        return self

    def _sphere(self) -> SmoothnessRequest:
        """points and targets: the training set on S^(d-1)."""
        x = self.points
        assert x is not None
        n, d = x.shape
        for name in ("n_train", "train_angles", "samples"):
            if getattr(self, name) is not None:
                raise field_error(name, f"{name} does not go with points (the training set on the sphere): "
                                  "leave it out")
        if not self.architectures:
            raise field_error("architectures", "points need architectures to interpolate with")
        if not 2 <= d <= MAX_SPHERE_DIM:
            raise field_error("points", f"points have d = {d} columns: the sphere S^(d-1) of R^d needs "
                              f"2 <= d <= {MAX_SPHERE_DIM}")
        if n < 2:
            raise field_error("points", f"give at least 2 training points, got {n}")
        with np.errstate(over="ignore", invalid="ignore"):  # a row of 1e200s: its norm is inf, off the sphere
            norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        off = ~(np.abs(norms - 1.0) <= UNIT_TOLERANCE)
        if off.any():
            i = int(np.argmax(off))
            raise field_error(f"points.{i}", f"row {i} has norm {norms[i]:.17g}: points must lie on the unit sphere "
                              f"(| |x| - 1 | <= {UNIT_TOLERANCE:g}); divide each row by its norm")
        if self.targets is None:
            raise field_error("targets", "points need targets: one value per point")
        if len(self.targets) != n:
            raise field_error("targets", f"targets has {len(self.targets)} values for {n} points")
        return self._canonical()


class MuResult(BaseModel):
    architecture: ArchitectureSpec | None = None
    mu: float | None = Field(description="The measure asked for (null for measure both).")
    mu_curvature: float | None = Field(None, description="The curvature measure, when asked for.")
    mu_rkhs: float | None = Field(None, description="The RKHS ratio, when asked for.")
    degree: int | None = Field(None, description="The highest harmonic degree the curvature sums (with points).")
    norm_f: float | None = None
    norm_gauss: float | None = None
    bandwidth: float | None = None
    cutoff: int | None = None


class SmoothnessResult(BaseModel):
    """On the circle: angles (n_grid,), interpolants (A, n_grid), train_angles and train_values (n,).
    With points: grid_points (M, d), interpolants (A, M), train_points (n, d), train_values (n,),
    grid_shape ([n_lat, n_lon] for d = 3, whose rows of grid_points are latitude-major; [M] else) and
    grid_degree (the highest harmonic degree the set resolves; null for d > 3)."""

    results: list[MuResult]
    samples: MuResult | None = None
    angles: list[float] | None = None
    interpolants: Matrix | None = None
    train_angles: list[float] | None = None
    train_values: list[float] | None = None
    grid_points: Matrix | None = None
    train_points: Matrix | None = None
    grid_shape: list[int] | None = None
    grid_degree: int | None = None


def _rkhs_cutoff(cutoff: int | None, bandwidth: float, n_grid: int) -> int:
    """mu_rkhs's harmonics kept: the cut-off, or where exp(-bw^2 k^2 / 2) < RKHS_MIN_WEIGHT; < n_grid / 2."""
    if cutoff is None:  # bounded before floor(): a bandwidth of 1e-320 gives inf
        cutoff = math.floor(min(math.sqrt(-2 * math.log(RKHS_MIN_WEIGHT)) / bandwidth, n_grid))
    return max(1, min(cutoff, n_grid // 2 - 1))


def _rkhs(n: int, harmonics: int, field: str) -> tuple[Term, Term]:
    """mu_rkhs's (n, n, 2c + 1) Gram and its least-squares solve: (memory, compute)."""
    entries = n * n * (2 * harmonics + 1)
    formula = f"the RKHS Gram {n} x {n} x {2 * harmonics + 1} harmonics"
    remedy = "lower the training angles, raise bandwidth or lower cutoff"
    return (floats(3 * entries, field, f"3 x {formula}", remedy),
            Term(entries * ELEMENTWISE_S + n**3 * LSTSQ_S_PER_N3, field, formula, remedy))


def sphere_set(d: int, n_grid: int) -> tuple[int, int | None]:
    """(M, n_lat) of `engine.sphere_sets.sphere_grid(d, n_grid)` (mirrored here without JAX; tests check):
    M points, n_lat latitudes of the product grid (d = 3; None otherwise)."""
    if d == 3:
        n_lat = max(2, math.isqrt(n_grid // 2))
        return 2 * n_lat * n_lat, n_lat
    return n_grid, None


def heat_degrees(r: SmoothnessRequest, d: int) -> int:
    """`engine.sphere_smoothness.heat_cutoff`: the RKHS measure's degrees on S^(d-1)."""
    limit = r.n_grid // 2 - 1
    if r.cutoff is not None:
        return max(1, min(r.cutoff, limit))
    x = -2 * math.log(RKHS_MIN_WEIGHT) / (r.bandwidth * r.bandwidth)
    top = math.sqrt(x) if d == 2 else (math.sqrt((d - 2) ** 2 + 4 * x) - (d - 2)) / 2
    return max(1, min(math.floor(min(top, limit)), limit))


def sphere_cost(r: SmoothnessRequest) -> Cost:
    """Training points on S^(d-1) (engine.sphere_smoothness): per architecture the training Gram, its
    solve and the grid x train Gram; the curvature's harmonic transform on S^2 or harmonic sum for d > 3,
    and / or the RKHS measure's Funk-Hecke eigenvalues (the profile at the rule's nodes, P_k there), energies
    and heat Gram."""
    assert r.points is not None
    (n, d), archs, g = r.points.shape, r.architectures, r.n_grid
    a, q = len(archs), 1.0 / d  # unit points: x.x/d = 1/d
    m, n_lat = sphere_set(d, g)
    grid_field = "n_grid" if m >= n else "points"
    output = [floats(m * d, "n_grid", f"the evaluation set {m} x {d}", "lower n_grid"),
              floats(a * m, "architectures", f"{a} interpolants x {m} points", "lower the number of architectures "
                     "or n_grid"), floats(n * d + n, "points", "training set")]
    memory = [worker_base(), input_numbers(n * d + n), kernel_tiles(archs),
              floats(a * m + 2 * m * d, "n_grid", f"{a} interpolants and the set, {m} points", "lower n_grid")]
    fit = [floats(5 * n * n, "points", f"5 copies of the {n} x {n} training Gram", "lower the number of points"),
           floats(m * n + 4 * m, grid_field, f"the {m} x {n} grid-train Gram", "lower n_grid or the points")]
    phases, compute = [fit], []
    for i, arch in enumerate(archs):
        compute += [kernel_seconds(n, None, arch, "points", f"architectures.{i}, training Gram: ", (q, q)),
                    kernel_seconds(m, n, arch, grid_field, f"architectures.{i}, grid-train Gram: ", (q, q)),
                    Term(n**3 * CHOLESKY_S_PER_N3, "points", f"Cholesky of {n} x {n}", "lower the number of points")]
    if r.measure != "rkhs" and n_lat is not None:
        table = n_lat**3
        phases.append([floats(table + 2 * m, "n_grid", f"the Legendre table {n_lat}^3", "lower n_grid")])
        compute.append(Term(a * (table + n_lat * n_lat * 100) * ELEMENTWISE_S, "n_grid",
                            f"{a} x the harmonic transform of {n_lat} latitudes", "lower n_grid"))
    if r.measure != "rkhs" and d > 3:
        c = min(g // 2 - 1, MAX_CURVATURE_DEGREE)
        nodes = 2 * nodes_for(c, d) + nodes_for(c, d) // 4  # the rule and its check (engine.sphere.check_rule)
        phases.append([floats(2 * (c + 1) * nodes + 3 * n * n, "n_grid", f"P_k for k <= {c} at {nodes} nodes",
                              "lower n_grid")])
        for i, arch in enumerate(archs):
            compute.append(kernel_seconds(1, nodes, arch, "n_grid", f"architectures.{i}, the profile: ", (q, q)))
        compute.append(Term((3 * nodes * nodes + a * (c + 1) * (2 * nodes + 4 * n * n)) * ELEMENTWISE_S, "n_grid",
                            f"the rules' nodes, {a} x the harmonic sum to degree {c} of {n} points", "lower n_grid"))
    if r.measure != "curvature":
        c = heat_degrees(r, d)
        nodes = nodes_for(c, d)
        field, remedy = ("cutoff", "lower cutoff") if r.cutoff is not None else (
            "bandwidth", "raise bandwidth, or give a lower cutoff")
        entries = (c + 1) * (nodes + 2 * n * n)
        phases.append([floats(entries + (d + 8) * nodes, field, f"P_k for k <= {c} at {nodes} nodes and {n} x {n} "
                              "point pairs", remedy)])
        for i, arch in enumerate(archs):
            compute.append(kernel_seconds(1, nodes, arch, field, f"architectures.{i}, the profile: ", (q, q)))
        compute += [Term(a * 4 * entries * ELEMENTWISE_S, field, f"{a} x 4 x {entries} recurrence entries", remedy),
                    Term(a * n**3 * LSTSQ_S_PER_N3, "points", f"{a} x lstsq of {n} x {n}",
                         "lower the number of points")]
    return Cost(output, memory + peak_phase(*phases), compute)


def cost(r: SmoothnessRequest) -> Cost:
    if r.points is not None:
        return sphere_cost(r)
    archs, g, rkhs = r.architectures, r.n_grid, r.measure != "curvature"
    n = 0 if not archs else (len(r.train_angles) if r.train_angles is not None else r.n_train or 0)
    n_field = "n_train" if r.train_angles is None else "train_angles"
    grid_field = "n_grid" if g >= n else n_field
    samples = count_rows(r.samples)
    a = len(archs)
    output = [floats(g if archs else samples, "n_grid", "the angle grid")]
    if archs:
        output += [floats(a * g, "architectures", f"{a} interpolants x n_grid {g}",
                          "lower the number of architectures or n_grid"), floats(2 * n, n_field, "training set")]
    curves = floats(2 * a * g, "architectures", f"2 x {a} interpolants x n_grid {g}",
                    "lower the number of architectures or n_grid")
    fit = [floats(5 * n * n, n_field, f"5 copies of the {n} x {n} training Gram", "lower the training angles"),
           floats(g * n + 4 * g, grid_field, f"the n_grid {g} x {n} grid-train Gram",
                  "lower n_grid or the training angles")]
    memory, compute = [worker_base(), input_numbers(2 * n + samples), kernel_tiles(archs), curves], []
    phases = [fit] if archs else []
    for i, arch in enumerate(archs):
        compute += [kernel_seconds(n, None, arch, n_field, f"architectures.{i}, training Gram: "),
                    kernel_seconds(g, n, arch, grid_field, f"architectures.{i}, grid-train Gram: "),
                    Term(n**3 * CHOLESKY_S_PER_N3, n_field, f"Cholesky of {n} x {n}", "lower the training angles")]
    if rkhs and archs:
        mem, sec = _rkhs(n, _rkhs_cutoff(r.cutoff, r.bandwidth, g), n_field)
        phases.append([mem])
        compute.append(Term(a * sec.amount, n_field, f"{a} x {sec.formula}", sec.remedy))
    if rkhs and samples and archs:
        mem, sec = _rkhs(n, _rkhs_cutoff(r.cutoff, r.bandwidth, samples), n_field)
        phases.append([mem])
        compute.append(sec)
    return Cost(output, memory + (peak_phase(*phases) if phases else []), compute)


def measures(measure: str, curvature: float | None, rkhs: dict[str, Any] | None) -> dict[str, Any]:
    """A result's measures: mu_curvature and mu_rkhs (with the RKHS norms, bandwidth and cutoff) as computed,
    and mu the one asked for (None for both)."""
    out: dict[str, Any] = {"mu_curvature": curvature, "mu_rkhs": None}
    if rkhs is not None:
        out |= rkhs | {"mu_rkhs": rkhs["mu"]}
    out["mu"] = None if measure == "both" else out["mu_curvature"] if measure == "curvature" else out["mu_rkhs"]
    return out


def run_sphere(params: dict[str, Any], inputs: Arrays, report: Progress) -> tuple[dict[str, Any], Arrays]:
    """The training set on S^(d-1): `engine.sphere_smoothness.sphere_interpolation` per architecture."""
    from engine import Architecture, sphere_interpolation

    measure = params["measure"]
    results, curves, fit = [], [], None
    specs = params["architectures"]
    for i, spec in enumerate(specs):
        fit = sphere_interpolation(Architecture.from_dict(spec), inputs["points"], inputs["targets"],
                                   kernel=params["kernel"], ridge=params["ridge"], n_grid=params["n_grid"],
                                   curvature=measure != "rkhs", rkhs=measure != "curvature",
                                   bandwidth=params["bandwidth"], cutoff=params["cutoff"])
        results.append({"architecture": spec, **measures(measure, fit["mu"], fit["rkhs"]), "degree": fit["degree"]})
        curves.append(fit["interpolant"])
        report((i + 1) / len(specs), f"{i + 1}/{len(specs)} architectures")
    assert fit is not None  # the schema: points need architectures
    meta = {"results": results, "grid_shape": fit["grid_shape"], "grid_degree": fit["grid_degree"]}
    return meta, {"grid_points": fit["grid_points"], "interpolants": np.stack(curves),
                  "train_points": fit["train_points"], "train_values": fit["train_values"]}


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Architecture, circle_grid, circle_interpolation, mu_curvature, mu_rkhs

    if inputs.get("points") is not None:
        return run_sphere(params, inputs, report)

    rkhs = {"bandwidth": params["bandwidth"], "cutoff": params["cutoff"]}
    measure = params["measure"]
    curvature, ratio = measure != "rkhs", measure != "curvature"
    results, curves, fit = [], [], None
    specs = params["architectures"]
    for i, spec in enumerate(specs):
        fit = circle_interpolation(Architecture.from_dict(spec), params["n_train"], kernel=params["kernel"],
                                   ridge=params["ridge"], n_grid=params["n_grid"], target=inputs.get("targets"),
                                   train_angles=inputs.get("train_angles"))
        by_rkhs = mu_rkhs(fit["interpolant"], fit["train_angles"], fit["train_values"], **rkhs) if ratio else None
        results.append({"architecture": spec, **measures(measure, fit["mu"] if curvature else None, by_rkhs)})
        curves.append(fit["interpolant"])
        report((i + 1) / len(specs), f"{i + 1}/{len(specs)} architectures")
    meta: dict[str, Any] = {"results": results}
    arrays = {"angles": circle_grid(params["n_grid"])}
    if fit is not None:
        arrays |= {"interpolants": np.stack(curves), "train_angles": fit["train_angles"],
                   "train_values": fit["train_values"]}
    samples = inputs.get("samples")
    if samples is not None:
        by_rkhs = None
        if ratio:
            assert fit is not None  # the schema: the rkhs measure of samples needs architectures
            by_rkhs = mu_rkhs(samples, fit["train_angles"], fit["train_values"], **rkhs)
        meta["samples"] = measures(measure, mu_curvature(samples) if curvature else None, by_rkhs)
        if fit is None:
            arrays["angles"] = circle_grid(len(samples))
    return meta, arrays

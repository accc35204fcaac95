"""POST /v1/regression: kernel regression (the interpolant, the GD mean at time t, the GP posterior)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from service.operations.cost import (
    CHOLESKY_S_PER_N3,
    EIGH_S_PER_N3,
    MATMUL_FLOPS,
    POINTS,
    Cost,
    Term,
    floats,
    flops,
    input_numbers,
    kernel_seconds,
    kernel_tiles,
    largest_q,
    norm_q,
    worker_base,
    y_columns,
)
from service.operations.fields import (
    POINT_SCALE,
    ArchitectureSpec,
    Arrays,
    Kernel,
    Matrix,
    Model,
    Number,
    Points,
    Progress,
    Seed,
    Targets,
    check_scale,
    field_error,
    same_dimension,
)
from service.operations.tiles import Tiling, scratch_gram, spread_gram

# the Nystrom fields' defaults
NYSTROM_FIELDS: dict[str, Any] = {"centers": 4096, "seed": 0, "tolerance": 1e-10, "max_iterations": 200}


class RegressionRequest(Model):
    """Kernel regression: the interpolant (t = null), the GD mean at time t, the GP posterior."""

    x_train: Points = Field(description="Training points (n, d)." + POINT_SCALE)
    y_train: Targets = Field(description="Targets (n,) or (n, k).")
    x_test: Points = Field(description="Test points (m, d)." + POINT_SCALE)
    architecture: ArchitectureSpec
    kernel: Kernel = "ntk"
    ridge: Number = Field(1e-10, ge=0, description=(
        "Relative: ridge x mean(diag K_train) is added to the training Gram's diagonal (the GP's noise variance). "
        "Coincident training points are merged; with different targets they are a 422 naming them."))
    t: Number | None = Field(None, ge=0, description="GD training time; null = infinity (the interpolant).")
    return_variance: bool = Field(False, description="NNGP posterior variance (needs kernel 'nngp'); with solver "
                                  "nystrom the DTC approximation (docs/numerics.md).")
    solver: Literal["exact", "nystrom"] = Field("exact", description=(
        "'exact': Cholesky of the training Gram. 'nystrom': M centres drawn uniformly (seeded) from the training "
        "points and Falkon's preconditioned conjugate gradient (Rudi et al. 2017); K_nM is held in memory (n M "
        "floats); with M = n it is the exact solve."))
    centers: int | None = Field(None, ge=1, description="nystrom: M, the number of centres (null = 4096; at most "
                                "the distinct training points).")
    seed: Seed | None = Field(None, description="nystrom: the centres' seed (null = 0).")
    tolerance: float | None = Field(None, gt=0, lt=1, description=(
        "nystrom: the conjugate gradient stops when each column's residual is below tolerance x its right-hand "
        "side (null = 1e-10)."))
    max_iterations: int | None = Field(None, ge=1, le=10_000, description="nystrom: conjugate gradient steps at "
                                       "most (null = 200); the answer reports the steps taken and the residual.")

    @model_validator(mode="after")
    def _solver(self) -> RegressionRequest:
        """The Nystrom fields go with solver nystrom only; there, null means the default (one job id)."""
        for name, default in NYSTROM_FIELDS.items():
            if self.solver == "exact" and getattr(self, name) is not None:
                raise field_error(name, f"{name} applies to solver 'nystrom' only: leave it out, or ask "
                                  "solver 'nystrom'")
            if self.solver == "nystrom" and getattr(self, name) is None:
                setattr(self, name, default)
        if self.solver == "nystrom" and self.t is not None:
            raise field_error("t", "the GD time t needs the exact solver (an eigendecomposition of the whole Gram)")
        if self.solver == "nystrom" and self.ridge == 0:
            raise field_error("ridge", "the Nystrom solver needs ridge > 0 (its system is singular without one)")
        return self

    @model_validator(mode="after")
    def _shapes(self) -> RegressionRequest:
        same_dimension(("x_train", self.x_train), ("x_test", self.x_test))
        check_scale(self.architecture, ("x_train", self.x_train), ("x_test", self.x_test))
        if len(self.y_train) != len(self.x_train):
            raise ValueError(f"y_train has {len(self.y_train)} rows, x_train {len(self.x_train)}")
        if self.return_variance and self.kernel != "nngp":
            raise ValueError("return_variance needs kernel 'nngp' (the posterior variance is the NNGP's)")
        return self


class RegressionResult(BaseModel):
    mean: list[float] | Matrix
    variance: list[float] | None = None
    centers: int | None = Field(None, description="nystrom: the centres M used.")
    iterations: int | None = Field(None, description="nystrom: conjugate gradient steps taken.")
    residual: float | None = Field(None, description="nystrom: the largest relative residual at the end (above "
                                   "tolerance when max_iterations stopped it).")


def nystrom_cost(r: RegressionRequest) -> Cost:
    """K_MM, K_nM and K_test (M columns), two M x M Cholesky factors, max_iterations CG steps of 4 n M k
    flops; the DTC variance adds K_Mn K_nM (2 n M^2) and its factor."""
    n, m, d, k, arch = len(r.x_train), len(r.x_test), len(r.x_train[0]), y_columns(r.y_train), r.architecture
    c, steps = min(r.centers or NYSTROM_FIELDS["centers"], n), r.max_iterations or NYSTROM_FIELDS["max_iterations"]
    out_field = "y_train" if k > m else "x_test"
    output = [floats(m * k, out_field, f"{m} test points x {k} columns of y_train",
                     "lower the number of test points (x_test) or of columns of y_train")]
    if r.return_variance:
        output.append(floats(m, "x_test", f"variance of {m} test points"))
    remedy = "lower the number of training points (x_train) or centers"
    memory = [worker_base(), input_numbers((n + m) * d + n * k), kernel_tiles([arch]),
              floats(n * c + 6 * c * c + 4 * c * k + n * k, "x_train", f"K_nM {n} x {c} and 6 x {c}^2", remedy),
              floats(m * c, "x_test", f"K_test {m} x {c}", "lower the number of test points or centers")]
    train_q, test_q, q_max = norm_q(r.x_train), norm_q(r.x_test), largest_q(r.x_train, r.x_test)
    compute = [kernel_seconds(c, None, arch, "centers", "K_MM: ", (train_q, train_q), q_max),
               kernel_seconds(n, c, arch, "x_train", "K_nM: ", (train_q, train_q), q_max),
               kernel_seconds(m, c, arch, "x_test", "K_test: ", (test_q, train_q), q_max),
               Term(2 * c**3 * CHOLESKY_S_PER_N3, "centers", f"2 Cholesky of {c} x {c}", "lower centers"),
               flops(steps * (4 * n * c * k + 4 * c * c * k), "max_iterations", f"{steps} steps x 4 x {n} x {c} x {k}",
                     "lower max_iterations, the training points or centers", MATMUL_FLOPS)]
    if r.return_variance:
        compute += [flops(2 * n * c * c + 2 * m * c * c, "centers", f"K_Mn K_nM: 2 x {n} x {c}^2", remedy,
                          MATMUL_FLOPS), Term(c**3 * CHOLESKY_S_PER_N3, "centers", f"Cholesky of {c} x {c}",
                                              "lower centers")]
    return Cost(output, memory, compute)


def exact_memory(n: int, m: int, d: int, k: int, arch: ArchitectureSpec, variance: bool) -> list[Term]:
    """The in-memory exact solve's peak: the inputs, the tiles, 5 copies of the n x n Gram, the cross Gram."""
    out_field = "y_train" if k > m else "x_test"
    gram = floats(5 * n * n, "x_train", f"5 copies of the {n} x {n} training Gram matrix (Gram, identity, ridged, "
                  "factor, solve)", "lower the number of training points (x_train)")
    cross = floats(m * n * (3 if variance else 1), "x_test",
                   f"the {m} x {n} test-train Gram matrix{' x 3 (variance solve)' if variance else ''}",
                   "lower the number of test points (x_test) or training points")
    return [worker_base(), input_numbers((n + m) * d + n * k), kernel_tiles([arch]), gram, cross,
            floats(m * k, out_field, f"{m} test points x {k} columns of y_train"),
            floats(2 * n * k, "y_train", f"coefficients {n} x {k}")]


def out_of_core_memory(n: int, m: int, d: int, k: int, arch: ArchitectureSpec, variance: bool, edge: int) -> list[Term]:
    """The out-of-core solve's peak (`engine.blocked_regression`): a few edge x edge blocks, the cross Gram's
    m x edge column block, the n x k coefficients; independent of n^2."""
    remedy = "lower RESKERNEL_TILE_EDGE (the blocks' edge)"
    memory = [worker_base(), input_numbers((n + m) * d + n * k), kernel_tiles([arch]),
              floats(8 * edge * edge, "x_train", f"8 blocks of {edge} x {edge} (the factor's 5, a Gram region and "
                     "its transpose, a read buffer)", remedy),
              floats(2 * m * edge, "x_test", f"the test-train Gram's column block {m} x {edge}, twice",
                     "lower the number of test points (x_test)"),
              floats(4 * n * k + m * k, "y_train", f"targets and coefficients 4 x {n} x {k}, the mean {m} x {k}")]
    if variance:
        memory.append(floats(3 * edge * edge, "x_test", f"the variance's test points against all {n}, in chunks of "
                             f"{edge}^2 numbers, 3 copies", remedy))
    return memory


def in_memory_cost(r: RegressionRequest) -> Cost:
    """The exact solve with the whole training Gram in memory (scipy's Cholesky, or eigh for t)."""
    n, m, d, k, arch = len(r.x_train), len(r.x_test), len(r.x_train[0]), y_columns(r.y_train), r.architecture
    out_field = "y_train" if k > m else "x_test"
    mean = floats(m * k, out_field, f"{m} test points x {k} columns of y_train",
                  "lower the number of test points (x_test) or of columns of y_train")
    output = [mean] + ([floats(m, "x_test", f"variance of {m} test points")] if r.return_variance else [])
    memory = exact_memory(n, m, d, k, arch, r.return_variance)
    compute = [
        *_kernel_terms(r), Term(n**3 * (EIGH_S_PER_N3 if r.t is not None else CHOLESKY_S_PER_N3), "x_train",
             f"{'eigh' if r.t is not None else 'Cholesky'} of {n} x {n}", "lower the number of training points"),
        flops(2 * m * n * k + 4 * n * n * k, out_field, f"2 x {m} x {n} x {k} (the mean)",
              "lower the number of test points or columns of y_train", MATMUL_FLOPS)]
    if r.return_variance:
        compute.append(flops(2 * n * n * m, "x_test", f"2 x {n}^2 x {m} (the variance)", POINTS, MATMUL_FLOPS))
    return Cost(output, memory, compute)


def out_of_core_cost(r: RegressionRequest, edge: int) -> Cost:
    """The exact solve with the training Gram in a Zarr array (`engine.blocked_kernel_regression`): bounded
    memory; the factor's n^3 / 3 flops and the triangular solves' (the disk it needs is checked as it runs)."""
    n, m, d, k, arch = len(r.x_train), len(r.x_test), len(r.x_train[0]), y_columns(r.y_train), r.architecture
    output = in_memory_cost(r).output
    memory = out_of_core_memory(n, m, d, k, arch, r.return_variance, edge)
    remedy = "lower the number of training points, or use solver 'nystrom'"
    compute = [
        *_kernel_terms(r), flops(n**3 / 3, "x_train", f"the blocked Cholesky factor: {n}^3 / 3", remedy, MATMUL_FLOPS),
        flops(4 * n * n * k + 2 * m * n * k, "y_train", f"2 triangular solves 2 x {n}^2 x {k} and the mean",
              "lower the number of test points or columns of y_train", MATMUL_FLOPS)]
    if r.return_variance:
        compute.append(flops(n * n * m, "x_test", f"{n}^2 x {m} (the variance's triangular solves)", POINTS,
                             MATMUL_FLOPS))
    return Cost(output, memory, compute)


def _kernel_terms(r: RegressionRequest) -> list[Term]:
    n, m, arch = len(r.x_train), len(r.x_test), r.architecture
    train_q, test_q, q_max = norm_q(r.x_train), norm_q(r.x_test), largest_q(r.x_train, r.x_test)
    terms = [kernel_seconds(n, None, arch, "x_train", "training Gram: ", (train_q, train_q), q_max),
             kernel_seconds(m, n, arch, "x_test", "test-train Gram: ", (test_q, train_q), q_max)]
    if r.return_variance:
        terms.append(kernel_seconds(m, 1, arch, "x_test", "test diagonal: ", (test_q, test_q), q_max))
    return terms


def cost(r: RegressionRequest) -> Cost:
    """The cost with the whole Gram in memory (solver 'exact'), or the Nystrom solver's."""
    return nystrom_cost(r) if r.solver == "nystrom" else in_memory_cost(r)


def cost_within(r: RegressionRequest, memory_bytes: int, edge: int) -> Cost:
    """The cost of the job the worker runs under a memory budget: an exact solve whose Gram does not fit runs
    out of core (`out_of_core_cost`), except with t, whose eigendecomposition needs the whole Gram in memory:
    then the in-memory cost, its Gram charged to the field t."""
    if r.solver == "nystrom":
        return nystrom_cost(r)
    whole = in_memory_cost(r)
    if whole.total("memory") <= memory_bytes:
        return whole
    if r.t is not None:  # all of its memory is t's: the field to name
        gram = max(whole.memory, key=lambda term: term.amount if term.field == "x_train" else 0.0)
        return Cost(whole.output, [Term(whole.total("memory"), "t", f"{gram.formula}, and {len(whole.memory) - 1} "
                                        "smaller parts", "the GD time t needs the whole Gram in memory (an "
                                        "eigendecomposition): leave t out (the interpolant, which runs out of core "
                                        "beyond memory), or lower the number of training points")], whole.compute)
    return out_of_core_cost(r, edge)


def out_of_core(params: dict[str, Any], inputs: Arrays, memory_bytes: int | None) -> bool:
    """Whether an exact job runs out of core: its in-memory peak (`exact_memory`, as admission reckons it) is
    over the worker's memory budget, and it asks no GD time t."""
    if params["solver"] != "exact" or params["t"] is not None or memory_bytes is None:
        return False
    x, x_test, y = inputs["x_train"], inputs["x_test"], inputs["y_train"]
    arch = ArchitectureSpec.model_validate(params["architecture"])
    terms = exact_memory(len(x), len(x_test), x.shape[1], 1 if y.ndim == 1 else y.shape[1], arch,
                         params["return_variance"])
    return sum(t.amount for t in terms) > memory_bytes


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Architecture, kernel_regression, nystrom_regression

    if params["solver"] == "nystrom":
        nystrom = nystrom_regression(inputs["x_train"], inputs["y_train"], inputs["x_test"],
                                     arch=Architecture.from_dict(params["architecture"]), kernel=params["kernel"],
                                     ridge=params["ridge"], centres=params["centers"], seed=params["seed"],
                                     tolerance=params["tolerance"], max_iterations=params["max_iterations"],
                                     return_variance=params["return_variance"], report=report,
                                     should_stop=report.should_stop,
                                     gram=spread_gram(folder, getattr(report, "tiling", None), params["architecture"],
                                                      params["kernel"], report.should_stop))
        pred = nystrom.prediction
        arrays = {"mean": pred.mean} | ({"variance": pred.variance} if pred.variance is not None else {})
        return {"centers": len(nystrom.centres), "iterations": nystrom.iterations,
                "residual": nystrom.residual}, arrays
    tiling = getattr(report, "tiling", None)  # a job's reporter carries the service's settings
    if tiling is not None and out_of_core(params, inputs, tiling.memory_bytes):
        return {}, _out_of_core(params, inputs, folder, report, tiling)
    fit = kernel_regression(inputs["x_train"], inputs["y_train"], inputs["x_test"],
                            arch=Architecture.from_dict(params["architecture"]), kernel=params["kernel"],
                            ridge=params["ridge"], t=params["t"], return_variance=params["return_variance"])
    arrays = {"mean": fit.mean} | ({"variance": fit.variance} if fit.variance is not None else {})
    return {}, arrays


def _out_of_core(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress, tiling: Tiling) -> Arrays:
    """The exact regression with its training Gram in a scratch Zarr array under `folder` (`scratch_gram`),
    removed when it ends, whichever way."""
    from engine import Architecture, blocked_kernel_regression

    scratch = folder / f"scratch-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        fit = blocked_kernel_regression(
            inputs["x_train"], inputs["y_train"], inputs["x_test"], arch=Architecture.from_dict(params["architecture"]),
            kernel=params["kernel"], ridge=params["ridge"], return_variance=params["return_variance"], edge=tiling.edge,
            gram=scratch_gram(scratch, tiling, params["architecture"], params["kernel"], report.should_stop),
            report=report, should_stop=report.should_stop)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"mean": fit.mean} | ({"variance": fit.variance} if fit.variance is not None else {})

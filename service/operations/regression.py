"""POST /v1/regression: kernel regression (the interpolant, the GD mean at time t, the GP posterior)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    Targets,
    check_scale,
    same_dimension,
)


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
    return_variance: bool = Field(False, description="NNGP posterior variance (needs kernel 'nngp').")

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


def cost(r: RegressionRequest) -> Cost:
    n, m, d, k, arch = len(r.x_train), len(r.x_test), len(r.x_train[0]), y_columns(r.y_train), r.architecture
    out_field = "y_train" if k > m else "x_test"
    mean = floats(m * k, out_field, f"{m} test points x {k} columns of y_train",
                  "lower the number of test points (x_test) or of columns of y_train")
    output = [mean] + ([floats(m, "x_test", f"variance of {m} test points")] if r.return_variance else [])
    gram = floats(5 * n * n, "x_train", f"5 copies of the {n} x {n} training Gram matrix (Gram, identity, "
                  "ridged, factor, solve)", "lower the number of training points (x_train)")
    cross = floats(m * n * (3 if r.return_variance else 1), "x_test",
                   f"the {m} x {n} test-train Gram matrix{' x 3 (variance solve)' if r.return_variance else ''}",
                   "lower the number of test points (x_test) or training points")
    memory = [worker_base(), input_numbers((n + m) * d + n * k), kernel_tiles([arch]), gram, cross, mean,
              floats(2 * n * k, "y_train", f"coefficients {n} x {k}")]
    train_q, test_q, q_max = norm_q(r.x_train), norm_q(r.x_test), largest_q(r.x_train, r.x_test)
    compute = [kernel_seconds(n, None, arch, "x_train", "training Gram: ", (train_q, train_q), q_max),
               kernel_seconds(m, n, arch, "x_test", "test-train Gram: ", (test_q, train_q), q_max),
               Term(n**3 * (EIGH_S_PER_N3 if r.t is not None else CHOLESKY_S_PER_N3), "x_train",
                    f"{'eigh' if r.t is not None else 'Cholesky'} of {n} x {n}", "lower the number of training points"),
               flops(2 * m * n * k + 4 * n * n * k, out_field, f"2 x {m} x {n} x {k} (the mean)",
                     "lower the number of test points or columns of y_train", MATMUL_FLOPS)]
    if r.return_variance:
        compute += [kernel_seconds(m, 1, arch, "x_test", "test diagonal: ", (test_q, test_q), q_max),
                    flops(2 * n * n * m, "x_test", f"2 x {n}^2 x {m} (the variance)", POINTS, MATMUL_FLOPS)]
    return Cost(output, memory, compute)


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Architecture, kernel_regression

    fit = kernel_regression(inputs["x_train"], inputs["y_train"], inputs["x_test"],
                            arch=Architecture.from_dict(params["architecture"]), kernel=params["kernel"],
                            ridge=params["ridge"], t=params["t"], return_variance=params["return_variance"])
    arrays = {"mean": fit.mean} | ({"variance": fit.variance} if fit.variance is not None else {})
    return {}, arrays

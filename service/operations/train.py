"""POST /v1/train: training finite networks (GD, SGD, Adam), loss curves, NTK drift."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, Strict, model_validator

from engine.conv.architecture import CONV_KINDS, ConvArchitecture
from engine.kernel_scale import out_of_range_depth
from service.operations.cost import (
    EIGVALSH_S_PER_N3,
    INIT_SECONDS_PER_PARAMETER,
    POINTS,
    SECONDS_PER_PARAMETER_STEP,
    Cost,
    Term,
    count_rows,
    floats,
    flops,
    forward_flops,
    input_numbers,
    kernel_seconds,
    kernel_tiles,
    largest_q,
    norm_q,
    ntk_pass,
    parameters,
    peak_phase,
    positions,
    signal_layers,
    step_flops,
    worker_base,
)
from service.operations.fields import (
    DENSE_KIND,
    POINT_SCALE,
    Arrays,
    ConvArchitectureSpec,
    Inputs,
    Matrix,
    NetworkFields,
    Progress,
    Values,
    check_inputs,
    field_error,
    largest_scale,
)


class TrainRequest(NetworkFields):
    """Train networks by GD / SGD / Adam; loss curves, predictions, weight movement, NTK drift."""

    x_train: Inputs = Field(description="Training points (n, d) for kinds resnet and mlp; signals (n, P, C) or "
                            "images (n, H, W, C), channels last, for conv-resnet and cnn (rank = len(filter_size) + "
                            "2)." + POINT_SCALE + " With lr 'auto', not all so small (or zero) that the NTK on them "
                            "underflows: the step bound would be infinite.")
    y_train: Values
    x_test: Inputs | None = Field(None, description="Test inputs (m, ...), shaped as x_train but for n."
                                  + POINT_SCALE)
    optimizer: Literal["gd", "sgd", "adam"] = "gd"
    lr: Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)] | Literal["auto"] = Field(
        "auto", description="Step size, or 'auto' (half the GD bound 2 / (lambda_min + lambda_max) of the NTK on "
        "x_train: the analytic NTK for the dense kinds, the first network's empirical NTK at initialisation for the "
        "conv kinds; NTK parametrisation only).")
    steps: int = Field(1000, ge=1)
    batch_size: int | None = Field(None, ge=1, description="null = full batch (SGD: 1).")
    record_every: int | None = Field(None, ge=1, description="Steps between records (default steps / 20).")
    track_ntk: bool = Field(False, description="Record the NTK drift on x_train.")
    return_ntk: bool = Field(False, description="Return the empirical NTK on x_train at init and after training.")
    jacobian_norms: bool = Field(False, description="||df/dx|| after training, at x_test (or x_train); dense "
                                 "kinds only.")

    @model_validator(mode="after")
    def _shapes(self) -> TrainRequest:
        check_inputs(self.architecture, ("x_train", self.x_train), ("x_test", self.x_test))
        self.check_conv_network("x_train", self.x_train, self.jacobian_norms)
        if self.lr == "auto":
            arch, q = self.architecture, largest_scale(self.x_train)
            crossed = out_of_range_depth(DENSE_KIND.get(arch.kind, arch.kind), arch.depth, arch.activation,
                                         arch.sigma_w, arch.sigma_v, arch.alpha, arch.sigma_b, q)
            if crossed is not None and crossed[1] < 1:  # underflow: the NTK on x_train is (about) zero
                raise field_error("x_train", f"lr 'auto' is half the step bound 2 / (lambda_min + lambda_max) of the "
                                  f"NTK on x_train, which underflows at layer {crossed[0]} (x.x/d at most {q:.3g}): "
                                  "give lr, or larger points")
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


def cost(r: TrainRequest) -> Cost:
    arch, width, nets, steps = r.architecture, r.width, r.n_init, r.steps
    conv = isinstance(arch, ConvArchitectureSpec)
    shape = tuple(np.shape(r.x_train)[1:])  # one input's: (d,), or (*S, C) for a conv kind
    n, m, where = len(r.x_train), count_rows(r.x_test), positions(shape)
    p = parameters(arch, width, shape)
    every = r.record_every or max(1, steps // 20)
    records = math.ceil(steps / every) + 1
    batch = r.batch_size or (1 if r.optimizer == "sgd" else n)
    state = 3 if r.optimizer == "adam" else 1  # Adam holds two moments beside the weights
    rec_field = "record_every" if r.record_every is not None and records > 21 else ("x_test" if m else "steps")
    rec_remedy = "raise record_every, or lower steps, n_init or the number of test points"
    output = [floats(records * (1 + nets), rec_field, f"{records} records x (1 + n_init {nets}) losses", rec_remedy),
              floats(nets, "n_init", "weight_movement")]
    if m:
        output.append(floats(records * (nets + 1) * m, rec_field, f"{records} records x (n_init {nets} + 1) x {m} "
                             "test predictions", rec_remedy))
    if r.track_ntk:
        output.append(floats(nets * records, rec_field, f"ntk_drift n_init {nets} x {records} records", rec_remedy))
    if r.return_ntk:
        output.append(floats(2 * nets * n * n, "x_train", f"ntk_initial and ntk_final 2 x n_init {nets} x {n} x {n}",
                             "lower the number of training points or n_init, or drop return_ntk"))
    if r.jacobian_norms:
        output.append(floats(nets * (m or n), "n_init", f"jacobian_norms n_init {nets} x {m or n}"))

    weights = floats(2 * state * nets * p, "width", f"2 states x {state} x n_init {nets} networks x {p} weights",
                     "lower the width, depth or n_init" + (", or use gd / sgd (Adam holds 3x)" if state > 1 else ""))
    held = [floats(2 * records * nets * m, rec_field, f"2 x {records} records x n_init {nets} x {m} predictions",
                   rec_remedy)] if m else []
    if r.track_ntk:
        held.append(floats(3 * nets * n * n, "track_ntk", f"track_ntk: 3 x n_init {nets} x {n} x {n} NTKs",
                           "lower the number of training points (x_train) or n_init, or drop track_ntk"))
    layers = signal_layers(arch)
    at = f" x {where} positions" if conv else ""
    # inside a chunk: the scan's carry in and out (2 x state), the gradient, Adam's new moments, the update
    step = [floats((4 + 2 * state) * p, "width", f"one step's carry, gradient and update {4 + 2 * state} x {p} "
                   "weights", "lower the width or depth"),
            floats(6 * layers * batch * where * width, "x_train",
                   f"signals 6 x {layers} layers x batch {batch}{at} x width {width}",
                   "lower the batch size (or the training points) or the width")]
    if not conv:  # a conv net's gradient is autodiff's, without the per-layer Grams
        step.append(floats(4 * arch.depth * batch * batch, "x_train", f"gradient-norm Grams 4 x depth {arch.depth} x "
                           f"batch {batch}^2", "lower the batch size (batch_size) or the training points"))
    record = [floats(3 * layers * (n + m) * where * width, "x_train",
                     f"forward 3 x {layers} x {n + m} points{at} x {width}")]
    ntk_memory, ntk_flops = ntk_pass(arch, width, p, n, 0, "track_ntk", "lower the number of training points "
                                     "(x_train) or the width, or drop track_ntk", shape)
    if r.track_ntk:
        record += ntk_memory
    final = []
    if r.return_ntk:
        final = [floats(nets * p, "return_ntk", f"return_ntk: n_init {nets} x {p} initial weights",
                        "lower the width or n_init, or drop return_ntk"),
                 *ntk_pass(arch, width, p, n, 0, "return_ntk", "lower the number of training points (x_train) "
                           "or the width, or drop return_ntk", shape)[0]]
    bound_field, bound = "x_train", [floats(3 * n * n, "x_train", f"lr bound: 3 x the {n} x {n} NTK")]
    remedy = "lower steps, n_init, the width, the depth or the batch size"
    if isinstance(arch, ConvArchitectureSpec):  # the first network's empirical NTK on x_train
        bound_memory, bound_flops = ntk_pass(arch, width, p, n, 0, bound_field, "lower the number of training "
                                             "points (x_train) or the width", shape)
        bound += [floats(p, "width", f"lr bound: one network's {p} weights", remedy), *bound_memory]
        bound_compute = [Term(p * INIT_SECONDS_PER_PARAMETER, "width", f"lr bound: drawing {p} weights", remedy),
                         flops(bound_flops, bound_field, f"lr bound: an empirical NTK, {bound_flops:.3g} flops",
                               POINTS)]
    else:
        bound.append(kernel_tiles([arch]))
        bound_compute = [kernel_seconds(n, None, arch, bound_field, "lr bound: ", (norm_q(r.x_train),) * 2,
                                        largest_q(r.x_train))]
    inputs = int(np.size(r.x_train)) + (0 if r.x_test is None else int(np.size(r.x_test))) + n
    memory = [worker_base(), input_numbers(inputs), weights, *held, *peak_phase(step, record, bound, final)]

    per_step = step_flops(arch, width, batch, p, where)
    record_flops = (n + m) * forward_flops(arch, p, where) + (ntk_flops if r.track_ntk else 0)
    compute = [*bound_compute,
               Term(n**3 * EIGVALSH_S_PER_N3, "x_train", f"lr bound: eigenvalues of {n} x {n}", POINTS),
               Term(nets * p * INIT_SECONDS_PER_PARAMETER * (2 if r.return_ntk else 1), "width",
                    f"drawing n_init {nets} x {p} weights", remedy),
               flops(steps * nets * per_step, "steps", f"steps {steps} x n_init {nets} x {per_step:.3g} flops",
                     remedy),
               Term(steps * nets * state * p * SECONDS_PER_PARAMETER_STEP, "steps",
                    f"steps {steps} x n_init {nets} x {state * p} weights updated", remedy),
               flops(records * nets * record_flops, rec_field, f"{records} records x n_init {nets} x "
                     f"{record_flops:.3g} flops", rec_remedy)]
    extra = nets * ((2 * ntk_flops if r.return_ntk else 0) + (6 * (m or n) * p if r.jacobian_norms else 0))
    if extra:
        compute.append(flops(extra, "n_init", f"return_ntk / jacobian_norms {extra:.3g} flops", remedy))
    return Cost(output, memory, compute)


def run(params: dict[str, Any], inputs: Arrays, folder: Path, report: Progress) -> tuple[dict[str, Any], Arrays]:
    from engine import Architecture, empirical_ntk, ensemble_member, init_params, input_jacobian_norms
    from engine import train as train_networks

    conv = params["architecture"]["kind"] in CONV_KINDS
    arch = (ConvArchitecture if conv else Architecture).from_dict(params["architecture"])
    x, how = inputs["x_train"], {"parametrization": params["parametrization"]}
    run = train_networks(
        arch, x, inputs["y_train"], width=params["width"], seed=params["seed"], n_init=params["n_init"],
        optimizer=params["optimizer"], lr=params["lr"], steps=params["steps"], batch_size=params["batch_size"],
        x_test=inputs.get("x_test"), record_every=params["record_every"], track_ntk=params["track_ntk"],
        progress=lambda step, steps, loss: report(step / steps, f"step {step}/{steps}, loss {loss:.4g}"),
        should_stop=report.should_stop, **how)
    names = ("steps", "loss", "predictions", "mean_prediction", "weight_movement", "ntk_drift")
    arrays = {name: run[name] for name in names if run[name] is not None}
    final = run["params"]
    if isinstance(arch, ConvArchitecture):  # no Jacobian norms (refused at validation)
        if params["return_ntk"]:
            from engine.conv.empirical import empirical_ntks
            from engine.conv.networks import init_params as conv_init

            initial = conv_init(arch, params["width"], x.shape[1:], params["seed"], n_init=params["n_init"])
            arrays |= {"ntk_initial": empirical_ntks(arch, initial, x), "ntk_final": empirical_ntks(arch, final, x)}
        return {"lr": run["lr"], "lr_bound": run["lr_bound"]}, arrays
    if params["return_ntk"]:
        initial = init_params(arch, params["width"], x.shape[1], params["seed"], n_init=params["n_init"], **how)
        for name, ensemble in (("ntk_initial", initial), ("ntk_final", final)):
            arrays[name] = np.stack([empirical_ntk(arch, ensemble_member(ensemble, i), x, **how)
                                     for i in range(params["n_init"])])
    if params["jacobian_norms"]:
        points = inputs.get("x_test", x)
        arrays["jacobian_norms"] = np.stack([input_jacobian_norms(arch, ensemble_member(final, i), points, **how)
                                             for i in range(params["n_init"])])
    return {"lr": run["lr"], "lr_bound": run["lr_bound"]}, arrays

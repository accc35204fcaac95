"""Admission cost model: what a request would cost the worker, from the validated request alone.

For each operation of `service.schemas.OPERATIONS`: the bytes of every array the worker
writes (`service/worker.py`), its peak memory, and its compute seconds on this 2-core machine.
Each cost is a list of `Term`s (bytes or seconds, the request field that drives it, how it
was reckoned); `limits.check_limits` compares their totals with the budgets.

JAX-free (the API process imports it): the engine's tile shapes are mirrored here and checked
against `engine.analytic` by the tests. Requests are read with len() and np.ndim() only, so
array fields may be nested lists or numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.architectures import QUADRATURE_ACTIVATIONS
from engine.norms import one_norm
from service.schemas import (
    ArchitectureSpec,
    BoundsRequest,
    EmpiricalKernelsRequest,
    KernelsRequest,
    Model,
    RegressionRequest,
    SmoothnessRequest,
    SpectrumRequest,
    TrainRequest,
)

# Rates measured by `python bench/cost.py` on this 2-core VM, 2026-11-29 (bench/RESULTS.md has the run):
# medians of 3 calls after a warm-up (compilation excluded), in the process's CPU seconds, because
# the VM was shared (load average 10-19) and the wall clock of one call varied 5x. CPU seconds are
# one core's wall time: work that uses both cores runs up to 2x faster than estimated.
KERNEL_ENTRY_LAYERS_PER_S = 1.0e8     # analytic_kernels, ReLU ResNet, N = 2048 (padded tile entries), L = 15
# Cost of an entry-layer relative to ReLU (same bench: erf and linear at N = 1024, L = 15; the quadrature
# activations at N = 64, L = 5, one call). One table: update it when the activations get faster.
# gelu is a closed form (1.2x ReLU at N = 1024, bench/latency.py); tanh, softplus and sigmoid on points of
# one norm are Chebyshev interpolants of each layer's dual (tens of ms at N = 256, L = 5: ~50x ReLU's
# entry-layer, bench/latency.py), and by quadrature (QUADRATURE_FACTOR, bench/cost.py) on points of
# different norms.
ACTIVATION_FACTOR = {"relu": 1.0, "erf": 1.1, "linear": 0.74, "gelu": 1.2,
                     "tanh": 50.0, "softplus": 50.0, "sigmoid": 50.0}
QUADRATURE_FACTOR = {"tanh": 13_900.0, "softplus": 51_800.0, "sigmoid": 16_700.0}
NETWORK_FLOPS = 4.3e10                # a training chunk, ResNet width 512, depth 5, batch 256: step_flops / (step
                                      # time - P x SECONDS_PER_PARAMETER_STEP)
SECONDS_PER_PARAMETER_STEP = 7.3e-9   # the same chunk at batch 1 (weight traffic): 19.1 ms a step / P = 2.62 M
INIT_SECONDS_PER_PARAMETER = 3.7e-8   # init_ensemble, width 2000, depth 5, 2 networks: 2.96 s / 80 M weights
MATMUL_FLOPS = 4.7e10                 # numpy float64 matmul, n = 2000
CHOLESKY_S_PER_N3 = 2.5e-11           # scipy cho_factor, n = 2000: seconds / n^3
EIGVALSH_S_PER_N3 = 3.3e-10           # np.linalg.eigvalsh, n = 2000
EIGH_S_PER_N3 = 9.1e-10               # np.linalg.eigh, n = 2000
LSTSQ_S_PER_N3 = 1.4e-9               # np.linalg.lstsq, n = 2000
ELEMENTWISE_S = 1.1e-8                # np.cos(b * 0.5).sum(-1) per element (the RKHS Gram)
WORKER_BASE_BYTES = 350 * 2**20       # peak RSS of a width-8 training job run as the worker runs it (JAX
                                      # loaded: 199 MiB; compiled and run: 349 MiB), measured as test_admission's
                                      # test_memory_estimate_is_above_a_measured_peak measures

# engine.analytic's tile shapes (tests/service/test_admission.py checks they still agree)
TILE, QUADRATURE_TILE, MIN_BUCKET = 512, 16, 16
IN_FLIGHT_TILES = 4                   # analytic_kernels keeps 2 x cores tiles in flight (2 cores)
TILE_BYTES_CLOSED = 16 * TILE * TILE * 8  # a closed-form tile's live arrays (a dozen or so)
TILE_BYTES_QUADRATURE = 80 * 2**20    # a 16 x 16 tile's quadrature nodes (README: tiles hold ~0.3 GB)
RKHS_MIN_WEIGHT = 1e-12               # engine.smoothness.mu_rkhs's default cut-off weight
F8 = 8                                # bytes of a float64


@dataclass(frozen=True)
class Term:
    """One part of a cost: `amount` (bytes or seconds), the request `field` that drives it,
    `formula` (how it was reckoned, in words) and `remedy` (what lowers it)."""

    amount: float
    field: str
    formula: str
    remedy: str


@dataclass(frozen=True)
class Cost:
    """A request's estimated output bytes, peak worker memory bytes and compute seconds."""

    output: list[Term]
    memory: list[Term]
    compute: list[Term]

    def total(self, kind: str) -> float:
        return float(sum(t.amount for t in getattr(self, kind)))

    def driver(self, kind: str) -> Term:
        """The largest term of `kind`: the field to name when the total is over budget."""
        return max(getattr(self, kind), key=lambda t: t.amount)


# ---------------------------------------------------------------- shapes and counts

def _bucket(n: int, tile: int) -> int:
    return min(tile, max(MIN_BUCKET, 1 << (n - 1).bit_length()))


def tile_entries(n1: int, n2: int | None, quadrature: bool) -> int:
    """Kernel entries `analytic_kernels(x1 (n1), x2 (n2))` evaluates, padding included: its tiles
    (upper triangle only when n2 is None, i.e. symmetric) and then the diagonal recursion."""
    tile = QUADRATURE_TILE if quadrature else TILE
    symmetric = n2 is None
    n2 = n1 if n2 is None else n2
    b1 = _bucket(n1, max(tile, tile * tile // _bucket(n2, tile)))  # tiles against a few points grow long
    b2 = _bucket(n2, max(tile, tile * tile // b1))
    k1, k2 = math.ceil(n1 / b1), math.ceil(n2 / b2)
    entries = (k1 * (k1 + 1) // 2 if symmetric else k1 * k2) * b1 * b2
    if symmetric:
        size = _bucket(n1, TILE)
        entries += math.ceil(n1 / size) * size
    return entries


def parameters(arch: ArchitectureSpec, width: int, input_dim: int) -> int:
    """Weights of one finite network (engine.networks' layout)."""
    n, depth = width, arch.depth
    matrices = 2 * depth if arch.kind == "resnet" else depth - 1
    biases = depth * n + 1 if arch.sigma_b > 0 else 0
    return n * input_dim + matrices * n * n + n + biases


def _layers(arch: ArchitectureSpec) -> int:
    """Width-n signals per point in a forward pass (inputs of each hidden matrix and the readout)."""
    return 2 * arch.depth + 1 if arch.kind == "resnet" else arch.depth


def step_flops(arch: ArchitectureSpec, width: int, batch: int, p: int) -> float:
    """One gradient step of one network on `batch` points: forward and backward (6 B P) and the
    gradient norm's per-layer Grams (two B x B Grams of 2 B^2 width flops per hidden matrix)."""
    return 6 * batch * p + 4 * _layers(arch) * batch * batch * width


def _columns(y) -> int:
    """k of y_train (n,) or (n, k), read from its first row only."""
    return len(y[0]) if np.ndim(y[0]) >= 1 else 1


def _rows(a) -> int:
    return 0 if a is None else len(a)


# ---------------------------------------------------------------- shared terms

POINTS = "lower the number of points"


def _bytes(amount: float, field: str, formula: str, remedy: str = POINTS) -> Term:
    return Term(float(amount) * F8, field, f"{formula} x 8 bytes", remedy)


def _kernel_seconds(n1: int, n2: int | None, arch: ArchitectureSpec, field: str, what: str = "",
                    sphere: bool = True) -> Term:
    """Seconds of `analytic_kernels` (n1 x n2 points); `sphere`: all points of one norm (the circle)."""
    quadrature = arch.activation in QUADRATURE_ACTIVATIONS and not sphere
    entries = tile_entries(n1, n2, quadrature)
    factor = QUADRATURE_FACTOR[arch.activation] if quadrature else ACTIVATION_FACTOR[arch.activation]
    seconds = entries * arch.depth * factor / KERNEL_ENTRY_LAYERS_PER_S
    formula = (f"{what}{entries} kernel entries x depth {arch.depth} x {arch.activation} cost {factor:g} / "
               f"{KERNEL_ENTRY_LAYERS_PER_S:.3g} entry-layers per second")
    return Term(seconds, field, formula, f"{POINTS} or the depth, or use relu or erf (closed forms)")


def one_norm_each(request: Model) -> bool:
    """Whether each point set of the request lies on one sphere: then tanh, softplus and sigmoid
    are interpolated in the correlation and cost about what ReLU costs (the circle experiment's
    points are on the unit circle)."""
    for name in ("x", "x2", "x_train", "x_test"):
        rows = getattr(request, name, None)
        if rows is not None and not one_norm(np.einsum("ij,ij->i", np.asarray(rows), np.asarray(rows))):
            return False
    return True


def _tiles(archs: list[ArchitectureSpec]) -> Term:
    slow = any(a.activation in QUADRATURE_ACTIVATIONS for a in archs)
    size = TILE_BYTES_QUADRATURE if slow else TILE_BYTES_CLOSED
    return Term(IN_FLIGHT_TILES * size, "architecture.activation", f"{IN_FLIGHT_TILES} kernel tiles in flight",
                "use relu or erf")


def _base() -> Term:
    return Term(WORKER_BASE_BYTES, "body", "the worker process with JAX loaded", "")


def _inputs(numbers: int) -> Term:
    return _bytes(numbers, "body", f"{numbers} input numbers")


def _flops(amount: float, field: str, formula: str, remedy: str, rate: float = NETWORK_FLOPS) -> Term:
    return Term(amount / rate, field, f"{formula} / {rate:.3g} flops per second", remedy)


def _peak(*phases: list[Term]) -> list[Term]:
    """The terms of the phase that holds the most memory (phases run one after another)."""
    return max(phases, key=lambda terms: sum(t.amount for t in terms))


# ---------------------------------------------------------------- the operations

def kernels_cost(r: KernelsRequest) -> Cost:
    n1, n2, d, arch = len(r.x), _rows(r.x2) or len(r.x), len(r.x[0]), r.architecture
    field = "x2" if r.x2 is not None and n2 > n1 else "x"
    output = [_bytes(len(r.kernels) * n1 * n2, field, f"{len(r.kernels)} kernel(s) x {n1} x {n2} points",
                     f"{POINTS} (x, x2) or ask for one kernel")]
    memory = [_base(), _inputs((n1 + _rows(r.x2)) * d), _tiles([arch])]  # the Gram matrices go to disk
    compute = [_kernel_seconds(n1, None if r.x2 is None else n2, arch, field, sphere=one_norm_each(r))]
    return Cost(output, memory, compute)


def regression_cost(r: RegressionRequest) -> Cost:
    n, m, d, k, arch = len(r.x_train), len(r.x_test), len(r.x_train[0]), _columns(r.y_train), r.architecture
    out_field = "y_train" if k > m else "x_test"
    mean = _bytes(m * k, out_field, f"{m} test points x {k} columns of y_train",
                  "lower the number of test points (x_test) or of columns of y_train")
    output = [mean] + ([_bytes(m, "x_test", f"variance of {m} test points")] if r.return_variance else [])
    gram = _bytes(5 * n * n, "x_train", f"5 copies of the {n} x {n} training Gram matrix (Gram, identity, "
                  "ridged, factor, solve)", "lower the number of training points (x_train)")
    cross = _bytes(m * n * (3 if r.return_variance else 1), "x_test",
                   f"the {m} x {n} test-train Gram matrix{' x 3 (variance solve)' if r.return_variance else ''}",
                   "lower the number of test points (x_test) or training points")
    memory = [_base(), _inputs((n + m) * d + n * k), _tiles([arch]), gram, cross, mean,
              _bytes(2 * n * k, "y_train", f"coefficients {n} x {k}")]
    sphere = one_norm_each(r)
    compute = [_kernel_seconds(n, None, arch, "x_train", "training Gram: ", sphere),
               _kernel_seconds(m, n, arch, "x_test", "test-train Gram: ", sphere),
               Term(n**3 * (EIGH_S_PER_N3 if r.t is not None else CHOLESKY_S_PER_N3), "x_train",
                    f"{'eigh' if r.t is not None else 'Cholesky'} of {n} x {n}", "lower the number of training points"),
               _flops(2 * m * n * k + 4 * n * n * k, out_field, f"2 x {m} x {n} x {k} (the mean)",
                      "lower the number of test points or columns of y_train", MATMUL_FLOPS)]
    if r.return_variance:
        compute += [_kernel_seconds(m, 1, arch, "x_test", "test diagonal: ", sphere),
                    _flops(2 * n * n * m, "x_test", f"2 x {n}^2 x {m} (the variance)", POINTS, MATMUL_FLOPS)]
    return Cost(output, memory, compute)


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
    return (_bytes(3 * entries, field, f"3 x {formula}", remedy),
            Term(entries * ELEMENTWISE_S + n**3 * LSTSQ_S_PER_N3, field, formula, remedy))


def smoothness_cost(r: SmoothnessRequest) -> Cost:
    archs, g, rkhs = r.architectures, r.n_grid, r.measure == "rkhs"
    n = 0 if not archs else (r.n_train if r.train_angles is None else len(r.train_angles))
    n_field = "n_train" if r.train_angles is None else "train_angles"
    grid_field = "n_grid" if g >= n else n_field
    samples = _rows(r.samples)
    a = len(archs)
    output = [_bytes(g if archs else samples, "n_grid", "the angle grid")]
    if archs:
        output += [_bytes(a * g, "architectures", f"{a} interpolants x n_grid {g}",
                          "lower the number of architectures or n_grid"), _bytes(2 * n, n_field, "training set")]
    curves = _bytes(2 * a * g, "architectures", f"2 x {a} interpolants x n_grid {g}",
                    "lower the number of architectures or n_grid")
    fit = [_bytes(5 * n * n, n_field, f"5 copies of the {n} x {n} training Gram", "lower the training angles"),
           _bytes(g * n + 4 * g, grid_field, f"the n_grid {g} x {n} grid-train Gram",
                  "lower n_grid or the training angles")]
    memory, compute = [_base(), _inputs(2 * n + samples), _tiles(archs), curves], []
    phases = [fit] if archs else []
    for i, arch in enumerate(archs):
        compute += [_kernel_seconds(n, None, arch, n_field, f"architectures.{i}, training Gram: "),
                    _kernel_seconds(g, n, arch, grid_field, f"architectures.{i}, grid-train Gram: "),
                    Term(n**3 * CHOLESKY_S_PER_N3, n_field, f"Cholesky of {n} x {n}", "lower the training angles")]
    if rkhs and archs:
        mem, sec = _rkhs(n, _rkhs_cutoff(r.cutoff, r.bandwidth, g), n_field)
        phases.append([mem])
        compute.append(Term(a * sec.amount, n_field, f"{a} x {sec.formula}", sec.remedy))
    if rkhs and samples and archs:
        mem, sec = _rkhs(n, _rkhs_cutoff(r.cutoff, r.bandwidth, samples), n_field)
        phases.append([mem])
        compute.append(sec)
    return Cost(output, memory + (_peak(*phases) if phases else []), compute)


def bounds_cost(r: BoundsRequest) -> Cost:
    return Cost([], [_base()], [Term(0.0, "body", "a closed form", "")])


def spectrum_cost(r: SpectrumRequest) -> Cost:
    g, n, arch = r.n_grid, _rows(r.x), r.architecture
    output = [_bytes(2 * g + 2 * (g // 2 + 1), "n_grid", f"profile and spectrum of n_grid {g}", "lower n_grid")]
    memory = [_base(), _tiles([arch]), _bytes(8 * g, "n_grid", f"8 arrays of n_grid {g}", "lower n_grid")]
    compute = [_kernel_seconds(1, g + 1, arch, "n_grid", "profile: ")]
    if n:
        output.append(_bytes(n, "x", f"{n} eigenvalues"))
        memory += [_inputs(n * len(r.x[0])), _bytes(4 * n * n, "x", f"4 copies of the {n} x {n} Gram matrix")]
        compute += [_kernel_seconds(n, None, arch, "x", "Gram: ", one_norm_each(r)),
                    Term(n**3 * EIGVALSH_S_PER_N3, "x", f"eigenvalues of {n} x {n}", POINTS)]
    return Cost(output, memory, compute)


def _ntk_pass(arch: ArchitectureSpec, width: int, p: int, n1: int, n2: int, field: str,
              remedy: str = f"{POINTS} or the width") -> tuple[list[Term], float]:
    """One structured empirical NTK (n1 x n2; n2 = 0: symmetric): its transient memory and its flops."""
    layers, depth, cols = _layers(arch), arch.depth, n2 or n1
    memory = [_bytes(6 * layers * (n1 + n2) * width, field, f"signals 6 x {layers} layers x {n1 + n2} points "
                     f"x width {width}", remedy),
              _bytes(3 * depth * n1 * cols, field, f"per-layer Grams 3 x depth {depth} x {n1} x {cols}", remedy)]
    return memory, 6 * (n1 + n2) * p + 4 * layers * n1 * cols * width


def empirical_kernels_cost(r: EmpiricalKernelsRequest) -> Cost:
    arch, width, nets = r.architecture, r.width, r.n_init
    n1, n2, d = len(r.x), _rows(r.x2) or len(r.x), len(r.x[0])
    p = parameters(arch, width, d)
    field = "x2" if r.x2 is not None and n2 > n1 else "x"
    ntk, nngp = "ntk" in r.kernels, "nngp" in r.kernels
    output = []
    if ntk:
        output += [_bytes(nets * n1 * n2, "n_init", f"n_init {nets} x {n1} x {n2} NTKs",
                          "lower n_init or the number of points"), _bytes(n1 * n2, field, f"ntk_mean {n1} x {n2}")]
    if nngp:
        output.append(_bytes(n1 * n2, field, f"nngp {n1} x {n2}"))
    if r.jacobian_norms:
        output.append(_bytes(nets * n1, "n_init", f"jacobian_norms n_init {nets} x {n1}"))
    ensemble = _bytes(nets * p, "width", f"n_init {nets} networks x {p} weights",
                      "lower the width, depth or n_init")
    pass_memory, pass_flops = _ntk_pass(arch, width, p, n1, n2 if r.x2 is not None else 0, field)
    phases = [[ensemble], [*pass_memory, _bytes(2 * n1 * n2, field, f"ntk_mean and nngp {n1} x {n2}")],
              [_bytes(3 * nets * (n1 + n2) * width, "n_init", f"ensemble forward 3 x {nets} x {n1 + n2} x {width}")],
              [_bytes(6 * _layers(arch) * n1 * width, "x", f"Jacobians 6 x {_layers(arch)} x {n1} x {width}")]]
    memory = [_base(), _inputs((n1 + _rows(r.x2)) * d), ensemble, *_peak(*phases)]
    remedy = "lower n_init, the width, the depth or the number of points"
    compute = [Term(nets * p * INIT_SECONDS_PER_PARAMETER, "width", f"drawing {nets} x {p} weights", remedy)]
    if ntk:
        compute.append(_flops(nets * pass_flops, "n_init", f"n_init {nets} NTKs x {pass_flops:.3g} flops", remedy))
    passes = nets * ((2 * (n1 + n2) * p if nngp else 0) + (6 * n1 * p if r.jacobian_norms else 0))
    compute.append(_flops(passes, "n_init", f"{passes:.3g} forward / backward flops", remedy))
    compute.append(Term(nets * 3 * p * SECONDS_PER_PARAMETER_STEP, "width", "weight traffic", remedy))
    return Cost(output, memory, compute)


def train_cost(r: TrainRequest) -> Cost:
    arch, width, nets, steps = r.architecture, r.width, r.n_init, r.steps
    n, m, d = len(r.x_train), _rows(r.x_test), len(r.x_train[0])
    p = parameters(arch, width, d)
    every = r.record_every or max(1, steps // 20)
    records = math.ceil(steps / every) + 1
    batch = r.batch_size or (1 if r.optimizer == "sgd" else n)
    state = 3 if r.optimizer == "adam" else 1  # Adam holds two moments beside the weights
    rec_field = "record_every" if r.record_every is not None and records > 21 else ("x_test" if m else "steps")
    rec_remedy = "raise record_every, or lower steps, n_init or the number of test points"
    output = [_bytes(records * (1 + nets), rec_field, f"{records} records x (1 + n_init {nets}) losses", rec_remedy),
              _bytes(nets, "n_init", "weight_movement")]
    if m:
        output.append(_bytes(records * (nets + 1) * m, rec_field, f"{records} records x (n_init {nets} + 1) x {m} "
                             "test predictions", rec_remedy))
    if r.track_ntk:
        output.append(_bytes(nets * records, rec_field, f"ntk_drift n_init {nets} x {records} records", rec_remedy))
    if r.return_ntk:
        output.append(_bytes(2 * nets * n * n, "x_train", f"ntk_initial and ntk_final 2 x n_init {nets} x {n} x {n}",
                             "lower the number of training points or n_init, or drop return_ntk"))
    if r.jacobian_norms:
        output.append(_bytes(nets * (m or n), "n_init", f"jacobian_norms n_init {nets} x {m or n}"))

    weights = _bytes(2 * state * nets * p, "width", f"2 states x {state} x n_init {nets} networks x {p} weights",
                     "lower the width, depth or n_init" + (", or use gd / sgd (Adam holds 3x)" if state > 1 else ""))
    held = [_bytes(2 * records * nets * m, rec_field, f"2 x {records} records x n_init {nets} x {m} predictions",
                   rec_remedy)] if m else []
    if r.track_ntk:
        held.append(_bytes(3 * nets * n * n, "track_ntk", f"track_ntk: 3 x n_init {nets} x {n} x {n} NTKs",
                           "lower the number of training points (x_train) or n_init, or drop track_ntk"))
    layers = _layers(arch)
    # inside a chunk: the scan's carry in and out (2 x state), the gradient, Adam's new moments, the update
    step = [_bytes((4 + 2 * state) * p, "width", f"one step's carry, gradient and update {4 + 2 * state} x {p} "
                   "weights", "lower the width or depth"),
            _bytes(6 * layers * batch * width, "x_train",
                   f"signals 6 x {layers} layers x batch {batch} x width {width}",
                   "lower the batch size (or the training points) or the width"),
            _bytes(4 * arch.depth * batch * batch, "x_train", f"gradient-norm Grams 4 x depth {arch.depth} x batch "
                   f"{batch}^2", "lower the batch size (batch_size) or the training points")]
    record = [_bytes(3 * layers * (n + m) * width, "x_train", f"forward 3 x {layers} x {n + m} points x {width}")]
    ntk_memory, ntk_flops = _ntk_pass(arch, width, p, n, 0, "track_ntk", "lower the number of training points "
                                      "(x_train) or the width, or drop track_ntk")
    if r.track_ntk:
        record += ntk_memory
    lr_bound = [_tiles([arch]), _bytes(3 * n * n, "x_train", f"lr bound: 3 x the {n} x {n} analytic NTK")]
    final = []
    if r.return_ntk:
        final = [_bytes(nets * p, "return_ntk", f"return_ntk: n_init {nets} x {p} initial weights",
                        "lower the width or n_init, or drop return_ntk"),
                 *_ntk_pass(arch, width, p, n, 0, "return_ntk", "lower the number of training points (x_train) "
                            "or the width, or drop return_ntk")[0]]
    memory = [_base(), _inputs((n + m) * d + n), weights, *held, *_peak(step, record, lr_bound, final)]

    remedy = "lower steps, n_init, the width, the depth or the batch size"
    per_step = step_flops(arch, width, batch, p)
    record_flops = 2 * (n + m) * p + (ntk_flops if r.track_ntk else 0)
    compute = [_kernel_seconds(n, None, arch, "x_train", "lr bound: ", one_norm_each(r)),
               Term(n**3 * EIGVALSH_S_PER_N3, "x_train", f"lr bound: eigenvalues of {n} x {n}", POINTS),
               Term(nets * p * INIT_SECONDS_PER_PARAMETER * (2 if r.return_ntk else 1), "width",
                    f"drawing n_init {nets} x {p} weights", remedy),
               _flops(steps * nets * per_step, "steps", f"steps {steps} x n_init {nets} x {per_step:.3g} flops",
                      remedy),
               Term(steps * nets * state * p * SECONDS_PER_PARAMETER_STEP, "steps",
                    f"steps {steps} x n_init {nets} x {state * p} weights updated", remedy),
               _flops(records * nets * record_flops, rec_field, f"{records} records x n_init {nets} x "
                      f"{record_flops:.3g} flops", rec_remedy)]
    extra = nets * ((2 * ntk_flops if r.return_ntk else 0) + (6 * (m or n) * p if r.jacobian_norms else 0))
    if extra:
        compute.append(_flops(extra, "n_init", f"return_ntk / jacobian_norms {extra:.3g} flops", remedy))
    return Cost(output, memory, compute)


ESTIMATORS: dict[type[Model], Callable[..., Cost]] = {
    KernelsRequest: kernels_cost, RegressionRequest: regression_cost, SmoothnessRequest: smoothness_cost,
    BoundsRequest: bounds_cost, SpectrumRequest: spectrum_cost, EmpiricalKernelsRequest: empirical_kernels_cost,
    TrainRequest: train_cost,
}


def estimate(request: Model) -> Cost:
    """The cost of an operation's validated request (one of service.schemas.OPERATIONS' models)."""
    for kind, estimator in ESTIMATORS.items():
        if isinstance(request, kind):
            return estimator(request)
    raise TypeError(f"no cost model for {type(request).__name__}")


def experiment_cost(name: str, counts: dict[str, int]) -> Cost:
    """The cost of a paper experiment from its own counts (`engine.experiments` `Experiment.cost`:
    kernel_entry_layers, training_weight_steps = networks x steps x samples x weights, output_bytes)."""
    field = f"parameters ({name})"
    kernels = counts.get("kernel_entry_layers", 0) / KERNEL_ENTRY_LAYERS_PER_S
    training = 6 * counts.get("training_weight_steps", 0) / NETWORK_FLOPS  # forward and backward
    return Cost(
        output=[Term(counts.get("output_bytes", 0), field, "the arrays the experiment returns",
                     "use fewer or smaller curves")],
        memory=[Term(WORKER_BASE_BYTES, field, "the worker's baseline", "")],
        compute=[Term(kernels, field, f"{counts.get('kernel_entry_layers', 0):.3g} kernel entries x layers",
                      "lower the depths, grids or sample sizes"),
                 Term(training, field, f"{counts.get('training_weight_steps', 0):.3g} weight-steps of training",
                      "lower the width, steps or networks (the paper scale of the finite-network experiments "
                      "is GPU work)")])

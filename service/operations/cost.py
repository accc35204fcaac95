"""Admission cost model: what a request would cost the worker, from the validated request alone.

Each operation's module (`service.operations.<name>`) has a `cost(request)`: the bytes of every
array its worker function writes, its peak memory, and its compute seconds on this 2-core
machine. Each cost is a list of `Term`s (bytes or seconds, the request field that drives it,
how it was reckoned); `service.jobs.admission` compares their totals with the budgets. This
module holds what they share: the measured rates, `Term` and `Cost`, and the common terms.

JAX-free (the API process imports it): the engine's tile shapes are mirrored here and checked
against `engine.analytic` by the tests. Requests are read with len() and np.ndim() only, so
array fields may be nested lists or numpy arrays.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.architectures import QUADRATURE_ACTIVATIONS, Architecture
from engine.conv.tiles import TILE_ENTRIES as CONV_TILE_ENTRIES
from engine.conv.tiles import pixel_pairs, tile_count, tile_edges
from engine.dual_plan import layer_methods, series_degree
from engine.norms import one_norm
from service.operations.fields import ArchitectureSpec, ConvArchitectureSpec, Model

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
# On points of one norm, a layer whose variances are too large for the degree-32 interpolant takes degree 128
# (2.7x the degree-32 layer: tanh, N = 512, L = 5, 0.50 s against 0.18 s of CPU), and one too large for degree
# 128 falls back to the quadrature, entry by entry (N = 64, L = 1, CPU seconds per entry-layer over ReLU's
# 1e-8: tanh 0.94 s / 4096 entries = 23,000x, softplus 60,000x, sigmoid 28,000x, the interpolant's samples
# included); engine.dual_plan says which layers do (python bench/dual_paths.py, 2026-12-04)
CHEBYSHEV_128_FACTOR = {"tanh": 140.0, "softplus": 140.0, "sigmoid": 140.0}
# On points of several norms, Mehler's series of degree K (engine.mehler): Horner's rule runs K / 2 steps per chain,
# `SERIES_CHAINS` chains (T and Tdot, their even and odd parts where present), a step a multiply and a multiply-add
# over the tile; per entry-layer over ReLU's: SERIES_FIXED (the per-point coefficients, the tails)
# + SERIES_STEP x chains x K / 2 (python bench/dual_paths.py --series)
SERIES_CHAINS = {"tanh": 2, "softplus": 4, "sigmoid": 2}
SERIES_FIXED, SERIES_STEP = 8.0, 0.02  # 2026-12-04, N = 512, L = 5: 5.8-15x measured, the model within 2x
# What a call costs whatever its size: analytic_kernels' dispatch (ReLU, 16 points, depth 2-30: 0.6 ms of CPU),
# and per series layer the per-point coefficients and the tails, outside the tiles (16 points: tanh 2.1 ms at
# depth 2, 8.0 ms at depth 10; softplus 2.7 / 10 ms), 2026-12-05, OPENBLAS_NUM_THREADS=1
KERNEL_CALL_S, SERIES_LAYER_S = 6e-4, 8e-4
FALLBACK_FACTOR = {"tanh": 23_000.0, "softplus": 60_000.0, "sigmoid": 28_000.0}
NETWORK_FLOPS = 4.3e10                # a training chunk, ResNet width 512, depth 5, batch 256: step_flops / (step
                                      # time - P x SECONDS_PER_PARAMETER_STEP)
CONV_FLOPS = 2.3e9                    # a conv net's forward and backward passes (XLA's float64 convolutions), the
                                      # training of bench/cost.py: cnn width 128, depth 2, 32 signals P = 8, 100 GD
                                      # steps, 7.6e9 flops in 3.3 s of CPU (widths 32-128, P 8-16, batch 8-32:
                                      # 2.2-2.3e9; q = 1: 3.8e9), 2026-12-05, OPENBLAS_NUM_THREADS=1
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
PROFILE_ROW = 256                     # engine.profile.ROW: a profile's distinct correlations, padded to rows of it
IN_FLIGHT_TILES = 4                   # analytic_kernels keeps 2 x cores tiles in flight (2 cores)
TILE_BYTES_CLOSED = 16 * TILE * TILE * 8  # a closed-form tile's live arrays (a dozen or so)
TILE_BYTES_QUADRATURE = 80 * 2**20    # a 16 x 16 tile's quadrature nodes (README: tiles hold ~0.3 GB)
# engine.conv.analytic, ReLU conv-resnet, pool readout, N = 128 images 8x8x1, depth 5 (bench/conv.py, 2026-12-04):
# 35.7 M pixel-pair entries x 5 blocks in 29.3 s on the 2 shared cores (6.1e6 a second): 3e6 per core
CONV_ENTRY_LAYERS_PER_S = 3.0e6
CONV_TILE_BYTES = 12 * 8 * CONV_TILE_ENTRIES  # a tile's live float64 arrays (about a dozen; measured peak 33 MiB for 2)
CONV_QUADRATURE_TILE_BYTES = 80 * 2**20  # ... and, for a quadrature activation, its chunk of nodes besides
RKHS_MIN_WEIGHT = 1e-12               # engine.smoothness.mu_rkhs's default cut-off weight
F8 = 8                                # bytes of a float64
CIRCLE_Q = 0.5                        # x.x/d of the unit circle's points (d = 2)
POINT_ARRAYS = ("x", "x2", "x_train", "x_test", "points")  # the request fields that hold point sets


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


def parameters(arch: ArchitectureSpec | ConvArchitectureSpec, width: int, input_shape: tuple[int, ...]) -> int:
    """Weights of one finite network (engine.networks' layout, or engine.conv.networks' for a conv
    kind); input_shape: one input's, (d,) or (*S, C)."""
    n, depth = width, arch.depth
    biases = depth * n + 1 if arch.sigma_b > 0 else 0
    if isinstance(arch, ConvArchitectureSpec):
        window, channels = math.prod(arch.filter_size), input_shape[-1]
        convs = 2 * depth if arch.kind == "conv-resnet" else depth - 1
        readout = n if arch.readout == "pool" else n * positions(input_shape)
        return window * channels * n + convs * window * n * n + readout + biases
    matrices = 2 * depth if arch.kind == "resnet" else depth - 1
    return n * input_shape[0] + matrices * n * n + n + biases


def positions(input_shape: tuple[int, ...]) -> int:
    """Where each weight of a layer is applied, per input: P = prod(S) for signals and images
    (*S, C); 1 for points (d,)."""
    return math.prod(input_shape[:-1])


def signal_layers(arch: ArchitectureSpec | ConvArchitectureSpec) -> int:
    """Width-n signals per point (per position, for a conv kind) in a forward pass (inputs of each
    hidden matrix or conv and the readout)."""
    return 2 * arch.depth + 1 if arch.kind in ("resnet", "conv-resnet") else arch.depth


def forward_flops(arch: ArchitectureSpec | ConvArchitectureSpec, p: int, where: int) -> float:
    """One input's forward pass through one network of p weights, in flops at NETWORK_FLOPS' rate:
    2 p; for a conv kind, 2 P p (each weight at P = `where` positions) at the convolutions' slower
    rate (CONV_FLOPS), so counted NETWORK_FLOPS / CONV_FLOPS times."""
    if isinstance(arch, ConvArchitectureSpec):
        return 2 * where * p * NETWORK_FLOPS / CONV_FLOPS
    return 2 * p


def step_flops(arch: ArchitectureSpec | ConvArchitectureSpec, width: int, batch: int, p: int, where: int = 1
               ) -> float:
    """One gradient step of one network on `batch` points: forward and backward (3 forward passes,
    `forward_flops`), and for a dense kind the gradient norm's per-layer Grams (two B x B Grams of
    2 B^2 width flops per hidden matrix; a conv net's gradient is autodiff's)."""
    if isinstance(arch, ConvArchitectureSpec):
        return 3 * batch * forward_flops(arch, p, where)
    return 6 * batch * p + 4 * signal_layers(arch) * batch * batch * width


def y_columns(y: Any) -> int:
    """k of y_train (n,) or (n, k), read from its first row only."""
    return len(y[0]) if np.ndim(y[0]) >= 1 else 1


def count_rows(a: Sized | None) -> int:
    return 0 if a is None else len(a)


POINTS = "lower the number of points"


def floats(amount: float, field: str, formula: str, remedy: str = POINTS) -> Term:
    """`amount` float64 numbers, in bytes."""
    return Term(float(amount) * F8, field, f"{formula} x 8 bytes", remedy)


def norm_q(rows: Any) -> float | None:
    """x.x/d of a point set whose points share one norm (`engine.norms.one_norm`), else None."""
    q = np.einsum("ij,ij->i", np.asarray(rows), np.asarray(rows))
    return float(q[0]) / len(rows[0]) if one_norm(q) else None


def largest_q(*sets: Any) -> float:
    """The largest x.x/d over the given point sets (None entries skipped)."""
    return max(float(np.max(np.einsum("ij,ij->i", a, a))) / a.shape[1]
               for a in (np.asarray(rows, dtype=np.float64) for rows in sets if rows is not None))


def series_factor(activation: str, degree: int) -> float:
    """A series layer of `degree` relative to a ReLU layer, per entry."""
    return SERIES_FIXED + SERIES_STEP * SERIES_CHAINS[activation] * degree / 2


def layer_factors(arch: ArchitectureSpec, q1: float | None, q2: float | None,
                  q_max: float | None = None) -> tuple[float, str, Counter[str]]:
    """The cost of `arch`'s layers relative to a ReLU layer, summed over its depth, for point sets of
    x.x/d = q1 and q2 (None: several norms, the largest x.x/d being q_max), by the path each layer takes
    (`engine.dual_plan`), the paths in words, and how many layers take each path."""
    if arch.activation not in QUADRATURE_ACTIVATIONS:
        return (arch.depth * ACTIVATION_FACTOR[arch.activation], f"depth {arch.depth} x {arch.activation} cost",
                Counter(closed=arch.depth))
    layers = layer_methods(Architecture.from_dict(arch.model_dump()), q1, q2, q_max)
    sphere = q1 is not None and q2 is not None  # else every layer takes the series or the quadrature
    act = arch.activation
    factor = {"quadrature": (FALLBACK_FACTOR if sphere else QUADRATURE_FACTOR)[act],
              "chebyshev 32": ACTIVATION_FACTOR[act], "chebyshev 128": CHEBYSHEV_128_FACTOR[act]}
    factor.update({path: series_factor(act, int(path.split()[1])) for path in layers if path.startswith("series ")})
    words = " + ".join(f"{n} {'layers' if n > 1 else 'layer'} {path} x {arch.activation} cost {factor[path]:g}"
                       for path, n in sorted(layers.items()))
    return sum(n * factor[path] for path, n in layers.items()), words, layers


def kernel_seconds(n1: int, n2: int | None, arch: ArchitectureSpec, field: str, what: str = "",
                   q: tuple[float | None, float | None] = (CIRCLE_Q, CIRCLE_Q), q_max: float | None = None) -> Term:
    """Seconds of `analytic_kernels` (n1 x n2 points); `q`: x.x/d of the two point sets when each has one
    norm (default: the unit circle's), None for one of several norms, whose largest x.x/d is q_max. The path
    of each layer (closed form, Chebyshev interpolant, series, quadrature) is the engine's own decision
    (`engine.dual_plan`)."""
    factor, words, layers = layer_factors(arch, *q, q_max)
    series_layers = sum(n for path, n in layers.items() if path.startswith("series "))
    quadrature = arch.activation in QUADRATURE_ACTIVATIONS and (q[0] is None or q[1] is None) and not series_layers
    entries = tile_entries(n1, n2, quadrature)
    seconds = entries * factor / KERNEL_ENTRY_LAYERS_PER_S + KERNEL_CALL_S + series_layers * SERIES_LAYER_S
    formula = (f"{what}{entries} kernel entries x ({words}) / {KERNEL_ENTRY_LAYERS_PER_S:.3g} entry-layers per second"
               f" + {KERNEL_CALL_S:g} s a call" + (f" + {series_layers} series layers x {SERIES_LAYER_S:g} s"
                                                    if series_layers else ""))
    return Term(seconds, field, formula, f"{POINTS} or the depth, or use relu or erf (closed forms)")


def profile_seconds(values: int, arch: ArchitectureSpec, field: str, what: str, q: float) -> Term:
    """Seconds of `engine.profile.correlation_profile` at `values` distinct correlations of points with x.x/d
    = q: one row of entries, padded to rows of PROFILE_ROW, through every layer's path (`engine.dual_plan`)."""
    entries = max(1, math.ceil(values / PROFILE_ROW)) * PROFILE_ROW
    factor, words, _ = layer_factors(arch, q, q)
    formula = (f"{what}{entries} distinct correlations x ({words}) / {KERNEL_ENTRY_LAYERS_PER_S:.3g} entry-layers "
               "per second")
    return Term(entries * factor / KERNEL_ENTRY_LAYERS_PER_S, field, formula, "lower it or the depth, or use relu "
                "or erf (closed forms)")


def point_sets(request: Model) -> list[Any]:
    """The request's point sets (those of POINT_ARRAYS it has), as given."""
    return [rows for name in POINT_ARRAYS if (rows := getattr(request, name, None)) is not None]


def one_norm_each(request: Model) -> bool:
    """Whether each point set of the request lies on one sphere: then tanh, softplus and sigmoid
    are interpolated in the correlation and cost about what ReLU costs (the circle experiment's
    points are on the unit circle)."""
    for rows in point_sets(request):
        if np.ndim(rows) != 2:  # signals or images: the conv kernels take the quadrature
            return False
        if not one_norm(np.einsum("ij,ij->i", np.asarray(rows), np.asarray(rows))):
            return False
    return True


def quadrature_activations(archs: list[ArchitectureSpec | ConvArchitectureSpec], request: Model) -> list[str]:
    """The activations of `archs` whose kernels of the request's points take the quadrature, entry by
    entry: a quadrature activation on signals or images (the conv kernels), or on points of several norms
    whose variances outgrow Mehler's series (`engine.dual_plan.series_degree`)."""
    slow = [a for a in archs if a.activation in QUADRATURE_ACTIVATIONS]
    if not slow or one_norm_each(request):  # also when the request has no point sets
        return []
    sets = point_sets(request)
    images = any(np.ndim(rows) != 2 for rows in sets)
    q_max = None if images else largest_q(*sets)
    return sorted({a.activation for a in slow if images or isinstance(a, ConvArchitectureSpec)
                   or series_degree(Architecture.from_dict(a.model_dump()), q_max) is None})


def kernel_tiles(archs: list[ArchitectureSpec]) -> Term:
    slow = any(a.activation in QUADRATURE_ACTIVATIONS for a in archs)
    size = TILE_BYTES_QUADRATURE if slow else TILE_BYTES_CLOSED
    return Term(IN_FLIGHT_TILES * size, "architecture.activation", f"{IN_FLIGHT_TILES} kernel tiles in flight",
                "use relu or erf")


def worker_base() -> Term:
    return Term(WORKER_BASE_BYTES, "body", "the worker process with JAX loaded", "")


def input_numbers(numbers: int) -> Term:
    return floats(numbers, "body", f"{numbers} input numbers")


def flops(amount: float, field: str, formula: str, remedy: str, rate: float = NETWORK_FLOPS) -> Term:
    return Term(amount / rate, field, f"{formula} / {rate:.3g} flops per second", remedy)


def peak_phase(*phases: list[Term]) -> list[Term]:
    """The terms of the phase that holds the most memory (phases run one after another)."""
    return max(phases, key=lambda terms: sum(t.amount for t in terms))


def ntk_pass(arch: ArchitectureSpec | ConvArchitectureSpec, width: int, p: int, n1: int, n2: int, field: str,
             remedy: str = f"{POINTS} or the width", input_shape: tuple[int, ...] = (1,)) -> tuple[list[Term], float]:
    """One structured empirical NTK (n1 x n2; n2 = 0: symmetric): its transient memory and its flops.
    input_shape: one input's ((*S, C) for a conv kind: `conv_ntk_pass`)."""
    if isinstance(arch, ConvArchitectureSpec):
        return conv_ntk_pass(arch, width, p, n1, n2, input_shape, field, remedy)
    layers, depth, cols = signal_layers(arch), arch.depth, n2 or n1
    memory = [floats(6 * layers * (n1 + n2) * width, field, f"signals 6 x {layers} layers x {n1 + n2} points "
                     f"x width {width}", remedy),
              floats(3 * depth * n1 * cols, field, f"per-layer Grams 3 x depth {depth} x {n1} x {cols}", remedy)]
    return memory, 6 * (n1 + n2) * p + 4 * layers * n1 * cols * width


def conv_ntk_pass(arch: ConvArchitectureSpec, width: int, p: int, n1: int, n2: int, input_shape: tuple[int, ...],
                  field: str, remedy: str) -> tuple[list[Term], float]:
    """`engine.conv.empirical.structured_ntk` (n1 x n2 inputs of shape (*S, C), n2 = 0: x1 twice): a
    forward and backward pass (each weight at P positions), then per conv layer the position-pair
    Grams of its back-propagated signals (width numbers a position) and of its input windows (|window|
    width), N1 N2 P^2 of each, every layer's held at once (measured peaks: 2.7 of them a layer). Its
    transient memory and its flops (at NETWORK_FLOPS' rate, `forward_flops`)."""
    where, window, cols = positions(input_shape), math.prod(arch.filter_size), n2 or n1
    layers, convs = signal_layers(arch), (2 * arch.depth + 1 if arch.kind == "conv-resnet" else arch.depth)
    pairs = n1 * cols * where * where
    remedy = f"{remedy}, the image size, or the filter size"
    memory = [floats(6 * layers * (n1 + n2) * where * width, field, f"signals 6 x {layers} layers x {n1 + n2} "
                     f"inputs x {where} positions x width {width}", remedy),
              floats(2 * (n1 + cols) * where * window * width, field, f"one layer's windows 2 x {n1 + cols} inputs "
                     f"x {where} positions x {window} x width {width}", remedy),
              # the layers' loop is unrolled under jit: peak RSS of N = 32-64 images 8 x 8, widths 64, 2026-12-05
              floats(3 * convs * pairs, field, f"position-pair Grams 3 x {convs} convs x {n1} x {cols} x {where}^2",
                     remedy)]
    return memory, 3 * (n1 + n2) * forward_flops(arch, p, where) + 2 * convs * pairs * (window + 1) * width


def conv_kernel_seconds(n1: int, n2: int | None, arch: ConvArchitectureSpec, spatial: tuple[int, ...],
                        field: str) -> Term:
    """Seconds of `engine.conv.analytic.conv_kernels` (n1 x n2 inputs of spatial shape `spatial`): its tiles'
    pixel pairs (padding included) x depth x the activation's cost (a quadrature one: every layer by
    quadrature, pixel variances differing)."""
    per_pair = pixel_pairs(arch.readout, spatial)
    b1, b2 = tile_edges(n1, n1 if n2 is None else n2, per_pair, n2 is None)
    entries = tile_count(n1, n2, b1, b2) * b1 * b2 * per_pair
    act = arch.activation
    factor = QUADRATURE_FACTOR[act] if act in QUADRATURE_ACTIVATIONS else ACTIVATION_FACTOR[act]
    seconds = entries * arch.depth * factor / CONV_ENTRY_LAYERS_PER_S
    formula = (f"{entries} pixel-pair entries ({per_pair} per image pair, readout {arch.readout}) x depth "
               f"{arch.depth} x {act} cost {factor:g} / {CONV_ENTRY_LAYERS_PER_S:.3g} entry-layers per second")
    return Term(seconds, field, formula, f"{POINTS}, the image size or the depth, use the flatten readout (P, not "
                "P^2, pixel pairs per image pair), or a closed-form activation")


def conv_kernel_tiles(arch: ConvArchitectureSpec) -> Term:
    size = CONV_TILE_BYTES + (CONV_QUADRATURE_TILE_BYTES if arch.activation in QUADRATURE_ACTIVATIONS else 0)
    return Term(IN_FLIGHT_TILES * size, "architecture.activation", f"{IN_FLIGHT_TILES} conv kernel tiles in flight",
                "use relu or erf")

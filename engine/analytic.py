"""Analytic NNGP and NTK Gram matrices of infinitely wide ResNets and MLPs.

The kernels follow forward recursions (shared/docs/kernels.md section 2), applied
entrywise to Gram tiles. A tile of entries needs only q = x.x'/d for its pairs and the
diagonal q of its rows and columns, so the matrix is computed tile by tile, in bounded
memory, in a few fixed tile shapes (few compilations whatever N is), on all cores, and can
be written straight into a `.npy` memory map.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from numpy.typing import ArrayLike, DTypeLike

from engine.architectures import Architecture, Family, check_architecture
from engine.chebyshev import interpolated_dual
from engine.dual import ACTIVATION_FUNCTIONS, CLOSED_FORMS, correlation, gaussian_dual, quadrature_dual
from engine.dual_plan import series_degree
from engine.mehler import diagonal_dual, series_dual
from engine.norms import one_norm
from engine.tiling import Block, Device, Progress, check_outputs, fill_tiles, place

KERNELS = ("nngp", "ntk")
# Tile edge for closed-form and interpolated activations (a power of two); the quadrature
# uses a smaller one, since each entry of its holds thousands of quadrature nodes.
TILE = 512
QUADRATURE_TILE = 16
MIN_BUCKET = 16
# How a tile's dual activations are computed (a static argument: one compilation each); "series K" is
# Mehler's series to degree K (engine.mehler), for points of several norms.
METHODS = ("closed", "chebyshev", "series", "quadrature")
FALLBACK_CHUNK = 256  # entries per step of the Chebyshev path's quadrature fallback


def hyperparameters(arch: Architecture, dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    """The traced numbers of `arch`: ([sigma_w^2, sigma_b^2, (alpha sigma_v)^2], depth).
    (Host arrays: jit moves them faster than jnp.asarray does.)"""
    numbers = np.array([arch.sigma_w**2, arch.sigma_b**2, (arch.alpha * arch.sigma_v) ** 2])
    return numbers.astype(dtype), np.asarray(arch.depth, np.int32)


def _pair_dual(family: Family, method: str, s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
    """(T, Tdot) for the pairs of a tile; for "chebyshev", s11 and s22 are scalars."""
    act = family.activation
    if method == "closed":
        return CLOSED_FORMS[act](s11, s12, s22)
    if method.startswith("series "):
        return series_dual(act, int(method.split()[1]), s11, s12, s22)
    if method == "quadrature":
        return quadrature_dual(act, s11, s12, s22)
    rho, norm = correlation(s11, s12, s22)

    def exact() -> tuple[Array, Array]:
        flat = (rho * norm).reshape(-1, FALLBACK_CHUNK)
        t, tdot = lax.map(lambda c: quadrature_dual(act, s11, c, s22), flat)
        return t.reshape(rho.shape), tdot.reshape(rho.shape)

    return interpolated_dual(lambda nodes: quadrature_dual(act, s11, nodes * norm, s22), rho, exact)


def _diagonal_t(family: Family, method: str, s: Array) -> Array:
    """T(s, s, s) for the diagonal variances s."""
    if method == "closed":
        return CLOSED_FORMS[family.activation](s, s, s)[0]
    if method.startswith("series "):  # the series' own rule: its value at rho = 1 is this sum
        return diagonal_dual(family.activation, s)[0]
    s = jnp.asarray(s)
    return gaussian_dual(ACTIVATION_FUNCTIONS[family.activation][:1], s, s, s)[0]


Carry = tuple[Array, Array, Array]


def recursion_start(family: Family, hyper: Array, q12: Array, q11: Array, q22: Array) -> Carry:
    """The recursion's state before the first layer: (K11 or S11, K22 or S22, K12 + i Theta)."""
    sw2, sb2 = hyper[0], hyper[1]
    if family.kind == "resnet":
        return q11, q22, lax.complex(q12, q12)
    s12 = sw2 * q12 + sb2
    return sw2 * q11 + sb2, sw2 * q22 + sb2, lax.complex(s12, s12)


def recursion_step(family: Family, method: str, hyper: Array, diagonal: bool) -> Callable[[Array, Carry], Carry]:
    """One layer of the recursions (shared/docs/kernels.md section 2), as a `fori_loop` body.

    Layers run in a loop (unrolled, XLA splits and duplicates the chain, several times slower). The
    pair state (K or S, and Theta) travels as one complex array K + i Theta: XLA then fuses each layer
    into a single pass over the tile instead of four.
    """
    sw2, sb2, c = hyper[0], hyper[1], hyper[2]

    def pair(s11: Array, s12: Array, s22: Array) -> tuple[Array, Array]:
        if diagonal and method.startswith("series "):  # rho = 1: the series' whole sum
            return diagonal_dual(family.activation, s12)
        if diagonal:
            return _pair_dual(family, method, s12, s12, s12)
        return _pair_dual(family, method, s11, s12, s22)

    def diag(s11: Array, s22: Array) -> tuple[Array, Array]:
        if method == "chebyshev":  # two scalars: one quadrature call
            t = _diagonal_t(family, method, jnp.stack([s11, s22]))
            return t[0], t[1]
        return _diagonal_t(family, method, s11), _diagonal_t(family, method, s22)

    if family.kind == "resnet":

        def layer(_: Array, carry: Carry) -> Carry:
            k11, k22, z = carry
            k12, th = z.real, z.imag
            s11, s12, s22 = sw2 * k11 + sb2, sw2 * k12 + sb2, sw2 * k22 + sb2
            t12, tdot12 = pair(s11, s12, s22)
            z = lax.complex(k12 + c * t12, th + c * (t12 + tdot12 * (s12 + sw2 * th)))
            if diagonal:
                return k11, k22, z
            t11, t22 = diag(s11, s22)
            return k11 + c * t11, k22 + c * t22, z

        return layer

    def mlp_layer(_: Array, carry: Carry) -> Carry:
        s11, s22, z = carry
        s12, th = z.real, z.imag
        t12, tdot12 = pair(s11, s12, s22)
        s12 = sw2 * t12 + sb2
        z = lax.complex(s12, s12 + sw2 * tdot12 * th)
        if diagonal:
            return s11, s22, z
        t11, t22 = diag(s11, s22)
        return sw2 * t11 + sb2, sw2 * t22 + sb2, z

    return mlp_layer


def recursion_finish(family: Family, hyper: Array, carry: Carry, kernels: tuple[str, ...]) -> dict[str, Array]:
    """{name: kernel} from the state after the last layer."""
    sw2, sb2, z = hyper[0], hyper[1], carry[2]
    if family.kind == "resnet":
        out = {"nngp": sw2 * z.real + sb2, "ntk": sw2 * (z.real + z.imag) + sb2}
    else:
        out = {"nngp": z.real, "ntk": z.imag}
    return {name: out[name] for name in kernels}


def _recursion(family: Family, method: str, kernels: tuple[str, ...], hyper: Array, depth: Array, q12: Array,
               q11: Array, q22: Array, diagonal: bool = False) -> dict[str, Array]:
    """Entrywise recursions (shared/docs/kernels.md section 2) for pairs with q12 = x.x'/d.

    q11, q22: q of the first and second points of each pair, broadcastable against q12
    (a tile: (n1, 1) and (1, n2); "chebyshev": scalars). Their variances travel through the
    same loop. diagonal=True: the pairs are (x, x), so q11 = q22 = q12 and the pair state
    is its own diagonal. hyper, depth: from `hyperparameters`, traced (a new alpha or depth
    reuses the compiled code). Returns {name: array of q12's shape}.
    """
    start = recursion_start(family, hyper, q12, q11, q22)
    carry = lax.fori_loop(0, depth, recursion_step(family, method, hyper, diagonal), start)
    return recursion_finish(family, hyper, carry, kernels)


@partial(jax.jit, static_argnames=("family", "method", "kernels"))
def _tile(x1: Array, x2: Array, q11: Array, q22: Array, hyper: Array, depth: Array, *, family: Family, method: str,
          kernels: tuple[str, ...]) -> dict[str, Array]:
    """One Gram tile: points x1 (b1, d), x2 (b2, d), their x.x/d q11 (b1,), q22 (b2,) (scalars for
    "chebyshev") -> {name: (b1, b2)}. q12 = x1.x2/d is formed here, on XLA's threads: a NumPy (BLAS)
    product per tile would leave BLAS's threads spinning against XLA's, halving the speed on 2 cores.
    At full float32 precision (HIGHEST): a GPU's default for float32 would round to TensorFloat-32."""
    q12 = jnp.matmul(x1, x2.T, precision=lax.Precision.HIGHEST) / x1.shape[1]
    if method != "chebyshev":
        q11, q22 = q11[:, None], q22[None, :]
    return _recursion(family, method, kernels, hyper, depth, q12, q11, q22)


@partial(jax.jit, static_argnames=("family", "method", "kernels"))
def _diagonal(q: Array, hyper: Array, depth: Array, *, family: Family, method: str,
              kernels: tuple[str, ...]) -> dict[str, Array]:
    """K(x, x) for q = x.x/d of shape (n,) -> {name: (n,)}."""
    return _recursion(family, method, kernels, hyper, depth, q, q, q, diagonal=True)


def method_for(activation: str, q1: np.ndarray, q2: np.ndarray) -> str:
    """"closed" where a closed form exists; else "chebyshev" when x1's points share one
    norm and x2's another (`engine.norms.one_norm`), else "series" (`resolve` names its degree)."""
    if activation in CLOSED_FORMS:
        return "closed"
    return "chebyshev" if one_norm(q1) and one_norm(q2) else "series"


def resolve(method: str, arch: Architecture, q_max: float) -> str:
    """"series" -> "series K" (`engine.dual_plan.series_degree` for the largest x.x/d, q_max), or
    "quadrature" when the variances outgrow the series; other methods unchanged."""
    if method != "series":
        return method
    degree = series_degree(arch, q_max)
    return "quadrature" if degree is None else f"series {degree}"


def check_points(x: ArrayLike, name: str) -> np.ndarray:
    """x as a float64 (n, d) array, or ValueError naming `name` (ragged, empty, NaN/Inf)."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 2-D array of numbers (points x dimension): {exc}") from exc
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (points, dimension), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def check_pair(x1: ArrayLike, x2: ArrayLike | None) -> tuple[np.ndarray, np.ndarray | None]:
    """`check_points` of x1 and of x2 (None stays None), which must share the dimension d."""
    x1 = check_points(x1, "x1")
    x2 = None if x2 is None else check_points(x2, "x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ValueError(f"x1 and x2 must have the same dimension d; got x1 {x1.shape}, x2 {x2.shape}")
    return x1, x2


def check_kernels(kernels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(kernels, str):
        kernels = (kernels,)
    kernels = tuple(kernels)
    bad = [k for k in kernels if k not in KERNELS]
    if bad or not kernels:
        raise ValueError(f"kernels must be a non-empty subset of {KERNELS}, got {list(kernels)}")
    return tuple(k for k in KERNELS if k in kernels)


def _check_dtype(dtype: str) -> np.dtype:
    if str(dtype) not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return np.dtype(str(dtype))


def _bucket(n: int, tile: int) -> int:
    """Padded tile edge for n points: a power of two in [MIN_BUCKET, tile] (tile a power of two)."""
    return min(tile, max(MIN_BUCKET, 1 << (n - 1).bit_length()))


def _pad(a: np.ndarray, size: int, value: float) -> np.ndarray:
    if a.shape[0] == size:
        return a
    width = [(0, size - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    return np.pad(a, width, constant_values=value)


def analytic_diagonal(x: ArrayLike, *, arch: Architecture, kernels: Sequence[str] = KERNELS,
                      dtype: str = "float64") -> dict[str, np.ndarray]:
    """K(x_i, x_i) for each point. x: (n, d) -> {name: (n,)}.

    K(x, x) depends on x only through q = x.x/d, so it is computed once per distinct q
    (once in all on a circle or a sphere), by the rule the tiles use: on several norms, tanh, softplus
    and sigmoid take the Gauss-Hermite sums of Mehler's series at rho = 1 (`engine.mehler`).
    """
    x = check_points(x, "x")
    check_architecture(arch)
    kernels, dt = check_kernels(kernels), _check_dtype(dtype)
    q, where = np.unique(np.einsum("ij,ij->i", x, x) / x.shape[1], return_inverse=True)
    n, size = q.size, _bucket(q.size, TILE)
    # the tiles' own rule: one norm, the quadrature (the Chebyshev path's samples); several, the series'
    method = ("closed" if arch.activation in CLOSED_FORMS else "quadrature" if one_norm(q)
              else resolve("series", arch, q[-1]))
    parts = []
    with jax.enable_x64(dt == np.float64):
        hyper, depth = hyperparameters(arch, dt)
        for start in range(0, n, size):
            chunk = q[start:start + size]
            out = _diagonal(_pad(chunk, size, 1.0).astype(dt), hyper, depth, family=arch.family,
                            method=method, kernels=kernels)
            parts.append({k: np.asarray(v)[: chunk.size] for k, v in out.items()})
    return {k: np.concatenate([part[k] for part in parts])[where.reshape(-1)] for k in kernels}


def analytic_kernels(
    x1: ArrayLike, x2: ArrayLike | None = None, *, arch: Architecture, kernels: Sequence[str] = KERNELS,
    dtype: str = "float64", progress: Progress | None = None, out: Mapping[str, np.ndarray] | None = None,
    should_stop: Callable[[], bool] | None = None, workers: int | None = None,
    devices: Sequence[Device] | None = None,
) -> dict[str, np.ndarray]:
    """Analytic NNGP/NTK Gram matrices of the infinitely wide `arch`.

    x1: (n1, d); x2: (n2, d), None means x1 (only tiles on and above the diagonal are
    computed, and the diagonal comes from the exact diagonal recursion).
    Returns {name: (n1, n2) array of `dtype`} for each name in `kernels`.
    out: optional {name: preallocated (n1, n2) array}, e.g. `np.lib.format.open_memmap`,
    to write a large Gram matrix straight to disk; it is filled and returned (by several threads at
    once, each its own tiles: arrays that take concurrent writes to disjoint regions, as numpy's do).
    progress(done, total) is called as tiles finish; should_stop() is polled between tiles
    and, when true, stops the work with `Cancelled`. workers: threads (default: all cores).
    devices: the JAX devices the tiles are spread over, round-robin (default: `jax.local_devices()`,
    e.g. every GPU of the host); the numbers are the same on any of them.
    """
    plan = GramPlan.of(x1, x2, arch=arch, kernels=kernels, dtype=dtype)
    whole = slice(0, plan.shape[0]), slice(0, plan.shape[1])
    return plan.region(*whole, out=check_outputs(out, plan.kernels, plan.shape, plan.dtype), progress=progress,
                       should_stop=should_stop, workers=workers, devices=devices)


@dataclass(frozen=True)
class GramPlan:
    """How `analytic_kernels` computes the (n1, n2) Gram matrices of x1 and x2: tiles of b1 x b2
    entries (their first rows and columns: `blocks`), by one method chosen from all the points'
    norms. Any region made of its tiles (`region`) is computed with the same numbers as the
    whole matrix, so a matrix can be filled region by region, on different machines."""

    x1: np.ndarray  # (n1, d)
    xb: np.ndarray  # (n2, d): x2, or x1 when symmetric
    arch: Architecture
    kernels: tuple[str, ...]
    dtype: np.dtype
    symmetric: bool
    method: str
    b1: int  # tile rows
    b2: int  # tile columns
    q1: np.ndarray  # (n1,) x1's x.x/d
    q2: np.ndarray  # (n2,) xb's
    hyper: tuple[np.ndarray, np.ndarray]  # `hyperparameters(arch, dtype)`, the tiles' traced arguments

    @classmethod
    def of(cls, x1: ArrayLike, x2: ArrayLike | None = None, *, arch: Architecture,
           kernels: Sequence[str] = KERNELS, dtype: str = "float64") -> GramPlan:
        x1, x2 = check_pair(x1, x2)
        check_architecture(arch)
        kernels, dt = check_kernels(kernels), _check_dtype(dtype)
        xb = x1 if x2 is None else x2
        n1, n2 = x1.shape[0], xb.shape[0]
        q1, q2 = _norms(x1), _norms(xb)
        method = resolve(method_for(arch.activation, q1, q2), arch, float(max(q1.max(), q2.max())))
        tile = QUADRATURE_TILE if method == "quadrature" else TILE
        # tiles of at most tile^2 entries; against a few points (a regression's test x train matrix)
        # they grow long, so a 4096 x 6 matrix is one call, not eight
        b1 = _bucket(n1, max(tile, tile * tile // _bucket(n2, tile)))
        b2 = _bucket(n2, max(tile, tile * tile // b1))
        return cls(x1, xb, arch, kernels, dt, x2 is None, method, b1, b2, q1, q2, hyperparameters(arch, dt))

    @property
    def shape(self) -> tuple[int, int]:
        return self.x1.shape[0], self.xb.shape[0]

    def blocks(self, rows: slice = slice(None), cols: slice = slice(None)) -> list[Block]:
        """The tiles whose first row and column fall in `rows` x `cols` (symmetric: on or above
        the diagonal only)."""
        (n1, n2), (r0, r1, _), (c0, c1, _) = self.shape, rows.indices(self.shape[0]), cols.indices(self.shape[1])
        return [(i, j) for i in range(0, n1, self.b1) for j in range(0, n2, self.b2)
                if r0 <= i < r1 and c0 <= j < c1 and (not self.symmetric or j >= i)]

    def compute(self, block: Block, device: Device | None = None) -> tuple[Block, dict[str, np.ndarray]]:
        """One tile: {name: (<= b1, <= b2)} at `block` (its first row and column), computed on `device`
        (a jax.Device; None: JAX's default), where its points, norms and hyperparameters are placed."""
        i, j = block
        xi, xj = self.x1[i:i + self.b1], self.xb[j:j + self.b2]
        with jax.enable_x64(self.dtype == np.float64):
            if self.method == "chebyshev":  # one norm per side: pass it as a scalar
                qi, qj = np.asarray(self.q1[0], self.dtype), np.asarray(self.q2[0], self.dtype)
            else:
                qi = _pad(self.q1[i:i + self.b1], self.b1, 1.0).astype(self.dtype)
                qj = _pad(self.q2[j:j + self.b2], self.b2, 1.0).astype(self.dtype)
            pi, pj = _pad(xi, self.b1, 0.0).astype(self.dtype), _pad(xj, self.b2, 0.0).astype(self.dtype)
            args = [place(a, device) for a in (pi, pj, qi, qj, *self.hyper)]
            tiles = _tile(*args, family=self.arch.family, method=self.method, kernels=self.kernels)
            return block, {k: np.asarray(v)[: len(xi), : len(xj)] for k, v in tiles.items()}

    def fill(self, out: Mapping[str, np.ndarray], blocks: Sequence[Block], *, origin: Block = (0, 0),
             progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
             workers: int | None = None, devices: Sequence[Device] | None = None) -> None:
        """Write `blocks`' tiles into `out` ({name: array}), whose entry [0, 0] is the matrix's `origin`
        (symmetric: a tile on the diagonal is mirrored within itself, others are not mirrored); the
        tiles are spread round-robin over `devices` (None: every local device, `engine.tiling`)."""
        def compute(block: Block, device: Device | None) -> tuple[Block, dict[str, np.ndarray]]:
            (i, j), tiles = self.compute(block, device)
            return (i - origin[0], j - origin[1]), tiles

        fill_tiles(blocks, compute, out, symmetric=self.symmetric and origin[0] == origin[1],
                   workers=workers or os.cpu_count() or 1, progress=progress, should_stop=should_stop,
                   what="analytic_kernels", devices=devices)

    def diagonal(self) -> dict[str, np.ndarray]:
        """K(x_i, x_i) of a symmetric plan: {name: (n1,)} (`analytic_diagonal`)."""
        return analytic_diagonal(self.x1, arch=self.arch, kernels=self.kernels, dtype=str(self.dtype))

    def region(self, rows: slice, cols: slice, *, out: Mapping[str, np.ndarray] | None = None,
               progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
               workers: int | None = None, devices: Sequence[Device] | None = None) -> dict[str, np.ndarray]:
        """The matrix's entries [rows, cols] as the whole matrix has them: {name: (rows, cols)}, written
        into `out` when given. The region's edges fall on tile edges (multiples of b1, b2, or the
        matrix's end); in a symmetric plan it lies on or above the diagonal (rows == cols, or rows end
        before cols start), and one on the diagonal takes its diagonal from `diagonal`. devices: as `fill`."""
        (r0, r1, _), (c0, c1, _) = rows.indices(self.shape[0]), cols.indices(self.shape[1])
        if r0 % self.b1 or c0 % self.b2 or (r1 % self.b1 and r1 != self.shape[0]) or \
                (c1 % self.b2 and c1 != self.shape[1]):
            raise ValueError(f"the region [{r0}:{r1}, {c0}:{c1}] does not fall on the tiles' edges "
                             f"({self.b1} x {self.b2})")
        if self.symmetric and (r0, r1) != (c0, c1) and r1 > c0:
            raise ValueError(f"the region [{r0}:{r1}, {c0}:{c1}] of a symmetric matrix must lie on or above "
                             "its diagonal")
        result = dict(out) if out is not None else {name: np.empty((r1 - r0, c1 - c0), self.dtype)
                                                    for name in self.kernels}
        self.fill(result, self.blocks(slice(r0, r1), slice(c0, c1)), origin=(r0, c0), progress=progress,
                  should_stop=should_stop, workers=workers, devices=devices)
        if self.symmetric and (r0, r1) == (c0, c1):
            idx = np.arange(r1 - r0)
            for name, values in self.diagonal().items():
                result[name][idx, idx] = values[r0:r1]
        return result


def _norms(x: np.ndarray) -> np.ndarray:
    """q = x.x/d of each point: (n, d) -> (n,)."""
    return np.einsum("ij,ij->i", x, x) / x.shape[1]

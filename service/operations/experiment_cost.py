"""What an experiment costs: the sum of the operations it runs, each charged by that operation's
own `cost` (issue 19, item 2), so that an experiment is refused whenever the same work sent to
`/v1/train`, `/v1/empirical-kernels`, `/v1/kernels`, ... would be.

`plan(name, params)` lists, for a full parameter set (`engine.experiments`), the operation
requests the experiment's code amounts to, with how many times each runs; `cost(name, params)`
adds them up: compute is the sum of every run, peak memory the heaviest run's (they run one
after another in one worker) plus the arrays the experiment holds until it returns, output the
arrays it returns (`Experiment.cost`'s output_bytes). Each term names the experiment's parameter
that drives it (`parameters.width`, ...). Requests are built with `model_construct` (no
validation: the experiment's own declarations bounded the parameters) and numpy points. JAX-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from engine.experiments import EXPERIMENTS
from engine.experiments.nngp_vs_ntk import KERNELS, grid_of
from service.operations import empirical_kernels, kernels, regression, smoothness, spectrum, train
from service.operations.cost import (
    CHOLESKY_S_PER_N3,
    EIGH_S_PER_N3,
    ELEMENTWISE_S,
    KERNEL_ENTRY_LAYERS_PER_S,
    LSTSQ_S_PER_N3,
    MATMUL_FLOPS,
    Cost,
    Term,
    floats,
    flops,
    parameters,
    worker_base,
)
from service.operations.cost import (
    CONV_ENTRY_LAYERS_PER_S as CONV_PAIR_LAYERS_PER_S,
)
from service.operations.fields import ArchitectureSpec, ConvArchitectureSpec, Model

Plan = list[tuple[int, Model]]  # (times it runs, the operation request)
FIGURE_SECONDS = 0.5  # the figure as PNG and SVG (report.figures.save: 0.15-0.7 CPU s for the quick scale's)
DIGITS_IMAGES = 366  # images of two classes of scikit-learn's digits at most (the largest two: 183 + 183)


def circle(n: int) -> np.ndarray:
    """(n, 2) points on the unit circle (the engine's circle_points of equispaced angles)."""
    b = np.linspace(-np.pi, np.pi, n, endpoint=False)
    return np.stack([np.cos(b), np.sin(b)], axis=1)


def archs(depth: int, alphas: list[float]) -> list[ArchitectureSpec]:
    """The experiments' comparison: the MLP, then a ResNet for each alpha (ReLU)."""
    return [ArchitectureSpec.model_construct(kind="mlp", depth=depth)] + [
        ArchitectureSpec.model_construct(kind="resnet", depth=depth, alpha=a) for a in alphas]


def _kernels(x: np.ndarray, x2: np.ndarray | None, arch: ArchitectureSpec, which: list[str]) -> Model:
    return kernels.KernelsRequest.model_construct(x=x, x2=x2, architecture=arch, kernels=which)


def _profile(arch: ArchitectureSpec, n: int, kernel: str = "ntk") -> Model:
    """engine.spectra.kernel_profile: the anchor against n angles (and itself)."""
    return _kernels(circle(1), circle(n + 1), arch, [kernel])


def _train(arch: ArchitectureSpec, x: np.ndarray, p: dict[str, Any], x_test: np.ndarray | None = None,
           **fields: Any) -> Model:
    return train.TrainRequest.model_construct(
        architecture=arch, width=p["width"], n_init=p["n_init"], x_train=x, y_train=np.zeros(len(x)), x_test=x_test,
        steps=p["steps"], record_every=max(1, p["steps"] // 20), **fields)


def _jacobians(arch: ArchitectureSpec, x: np.ndarray, p: dict[str, Any]) -> Model:
    """The networks' ||df/dx|| at x, at initialisation (drawing them included)."""
    return empirical_kernels.EmpiricalKernelsRequest.model_construct(
        architecture=arch, width=p["width"], n_init=p["n_init"], x=x, x2=None, kernels=[], jacobian_norms=True)


def _kernel_shapes(p: dict[str, Any]) -> Plan:
    return [(len(p["kernels"]), _profile(a, p["n_angles"])) for d in p["depths"] for a in archs(d, p["alphas"])] + [
        (1, _profile(archs(5, [0.1])[1], 3))]


def _interpolation(p: dict[str, Any]) -> Plan:
    return [(1, smoothness.SmoothnessRequest.model_construct(
        architectures=archs(d, p["alphas"]), n_train=m, n_grid=p["n_grid"], kernel=p["kernel"]))
        for d in p["depths"] for m in p["n_trains"]]


def _finite_vs_infinite(p: dict[str, Any]) -> Plan:
    arch = ArchitectureSpec.model_construct(kind="resnet", depth=p["depth"], alpha=p["alpha"])
    grid = circle(p["n_grid"])
    plan: Plan = [(1, empirical_kernels.EmpiricalKernelsRequest.model_construct(
        architecture=arch, width=p["width"], n_init=p["n_init"], x=circle(1), x2=circle(p["n_angles"]),
        kernels=["ntk"], jacobian_norms=False)), (1, _profile(arch, p["n_angles"]))]
    for m, lr in zip(p["n_trains"], p["lrs"], strict=True):
        x = circle(m)
        plan += [(1, _train(arch, x, p, grid, lr=lr, track_ntk=True)),
                 (1, regression.RegressionRequest.model_construct(
                     x_train=x, y_train=np.zeros(m), x_test=grid, architecture=arch, t=lr * p["steps"]))]
    return plan


def _beyond_ntk(p: dict[str, Any]) -> Plan:
    grid = circle(p["n_grid"])
    return [(1, _train(a, circle(m), p, grid, optimizer=opt, lr=lr, batch_size=1))
            for opt, lr in zip(p["optimizers"], p["lrs"], strict=True) for m in p["n_trains"]
            for a in archs(p["depth"], p["alphas"])]


def _lowest_loss(p: dict[str, Any]) -> Plan:
    def embed(n: int) -> np.ndarray:
        return circle(n) if p["input"] == "circle" else np.linspace(-np.pi, np.pi, n)[:, None]

    return [(1, _train(a, embed(p["n_train"]), p, embed(p["n_grid"]), optimizer="adam", lr=p["lr"], batch_size=1))
            for a in archs(p["depth"], p["alphas"])]


def _lowest_loss_extra(p: dict[str, Any]) -> list[Term]:
    """keep_best: each step, every network's loss on the whole training set (a forward pass)."""
    nets = p["n_init"] * (len(p["alphas"]) + 1)
    work = 2.0 * p["steps"] * nets * p["n_train"] * parameters(
        archs(p["depth"], [1.0])[1], p["width"], (2 if p["input"] == "circle" else 1,))
    return [flops(work, "parameters.steps", f"the lowest-loss check: {p['steps']} steps x {nets} networks x "
                  f"{p['n_train']} points forward", "lower steps, n_init, the width or n_train")]


def _bounds(p: dict[str, Any]) -> Plan:
    x, grid = circle(6), circle(p["n_grid"])
    plan: Plan = []
    for a in archs(p["train_depth"], p["train_alphas"]):  # train, then ||df/dx|| at init and trained
        plan += [(1, _train(a, x, p, None, lr=1.0)), (2, _jacobians(a, grid, p))]
    return plan


def _spectra(p: dict[str, Any]) -> Plan:
    points = circle(p["n_points"])
    plan: Plan = [(1, spectrum.SpectrumRequest.model_construct(architecture=a, n_grid=p["n_grid"], x=None))
                  for d in p["depths"] for a in archs(d, p["alphas"])]
    return plan + [(1, spectrum.SpectrumRequest.model_construct(architecture=a, n_grid=8, x=points))
                   for d in p["condition_depths"] for a in archs(d, p["alphas"])]


def _digits(p: dict[str, Any]) -> Plan:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((DIGITS_IMAGES, 64))
    images /= np.linalg.norm(images, axis=1, keepdims=True)  # unit-norm inputs, as the experiment's
    return [(p["draws"], regression.RegressionRequest.model_construct(
        x_train=images[:n], y_train=np.zeros(n), x_test=images[n:], architecture=a.model_copy(update={"depth": d}),
        t=None)) for n in p["n_trains"] for d in p["depths"] for a in archs(1, p["alphas"])]


def _rkhs_vs_curvature(p: dict[str, Any]) -> Plan:
    return [(1, smoothness.SmoothnessRequest.model_construct(
        architectures=archs(p["depth"], p["alphas"]), n_train=m, n_grid=p["n_grid"], measure="rkhs",
        bandwidth=p["bandwidth"], cutoff=p["cutoff"])) for m in p["n_trains"]]


def _spiky_or_stable(p: dict[str, Any]) -> Plan:
    """Per network and depth: the kernels of one point against the grid, both Gauss rules and the
    refinements (`engine.experiments.spiky_or_stable.points`), points of S^(d-1)."""
    from engine.experiments.spiky_or_stable import points

    d, n = p["sphere_dim"], points(p)
    anchor, x2 = np.eye(1, d), np.eye(1, d).repeat(n, axis=0)
    plan: Plan = []
    for depth in p["depths"]:
        specs = archs(depth, p["alphas"]) + [ArchitectureSpec.model_construct(kind="resnet", depth=depth,
                                                                                 alpha=depth ** -g)
                                             for g in p["gammas"]]
        plan += [(1, kernels.KernelsRequest.model_construct(x=anchor, x2=x2, architecture=a.model_copy(
            update={"activation": p["activation"]}), kernels=p["kernels"])) for a in specs]
    return plan


def _sphere(n: int, d: int) -> np.ndarray:
    """(n, d) points of the unit sphere of R^d (a fixed sample: only their count and norms matter)."""
    x = np.random.default_rng(0).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _learning_curves(p: dict[str, Any]) -> Plan:
    """Per dimension and network: the spectrum of each kernel, and per draw the training Gram and the
    test-train kernels (both kernels in one request each)."""
    n = max(p["n_trains"])
    plan: Plan = []
    for d in p["sphere_dims"]:
        x, x_test = _sphere(n, d), _sphere(p["n_test"], d)
        for a in archs(p["depth"], p["alphas"]):
            a = a.model_copy(update={"activation": p["activation"]})
            plan += [(1, spectrum.SpectrumRequest.model_construct(architecture=a, kernel=k, n_grid=8, x=None,
                                                                  sphere_dim=d, k_max=p["k_max"]))
                     for k in p["kernels"]]
            plan += [(p["draws"], kernels.KernelsRequest.model_construct(x=x, x2=None, architecture=a,
                                                                         kernels=p["kernels"])),
                     (p["draws"], kernels.KernelsRequest.model_construct(x=x_test, x2=x, architecture=a,
                                                                         kernels=p["kernels"]))]
    return plan


def _learning_curves_extra(p: dict[str, Any]) -> list[Term]:
    """The regressions: per training set a Cholesky solve (n^3 / 3) and the test predictions (2 m n)."""
    n_max, fits = max(p["n_trains"]), len(p["sphere_dims"]) * (1 + len(p["alphas"])) * p["draws"] * len(p["kernels"])
    work = fits * sum(min(n_max // n, 16) * (n**3 / 3 + 2 * p["n_test"] * n) for n in p["n_trains"])
    return [flops(work, "parameters.n_trains", f"{fits} x the solves of every training set", "lower n_trains or draws",
                  MATMUL_FLOPS)]


CONV_ENTRY_LAYERS_PER_S = 5e7  # conv_spectra's quick run: 6.9e9 pixel-pair x window x layer entries in 107 s
CONV_TILE_BYTES = 40 * 2**20   # engine.conv.analytic.conv_kernels: about 40 MiB of tiles a thread


def _conv_spectra_compute(p: dict[str, Any]) -> list[Term]:
    """The conv Gram matrices (no /v1 operation computes them yet): pixel pairs x window x layers."""
    work = EXPERIMENTS["conv-spectra"].cost(p)["kernel_entry_layers"]
    return [Term(work / CONV_ENTRY_LAYERS_PER_S, "parameters.n_images", f"{work:.3g} pixel-pair x window x layer "
                 f"entries / {CONV_ENTRY_LAYERS_PER_S:.3g} per second", "lower n_images or depths, or use flatten")]


def _conv_spectra_memory(p: dict[str, Any]) -> list[Term]:
    n = p["n_images"]
    return [worker_base(), Term(2 * CONV_TILE_BYTES, "parameters.n_images", "2 threads' conv tiles", ""),
            floats(4 * n * n, "parameters.n_images", f"two {n} x {n} Gram matrices and their eigen work")]


def _nngp_vs_ntk(p: dict[str, Any]) -> Plan:
    """Per depth and kernel: /v1/smoothness with measure both on the circle (each m) and with points on
    each sphere (n_points of S^(d-1), its n_grid as the experiment sets it)."""
    plan: Plan = []
    for depth in p["depths"]:
        nets = archs(depth, p["alphas"])
        for kernel in KERNELS:
            plan += [(1, smoothness.SmoothnessRequest.model_construct(
                architectures=nets, n_train=m, n_grid=p["n_grid"], kernel=kernel, ridge=p["ridge"], measure="both",
                bandwidth=p["bandwidth"], cutoff=None)) for m in p["n_trains"]]
            plan += [(1, smoothness.SmoothnessRequest.model_construct(
                architectures=nets, points=_sphere(p["n_points"], d), targets=np.ones(p["n_points"]),
                n_grid=grid_of(d, p["sphere_grid"]), kernel=kernel, ridge=p["ridge"], measure="both",
                bandwidth=p["sphere_bandwidth"], cutoff=None)) for d in p["sphere_dims"]]
    return plan


def _nngp_vs_ntk_fields(request: Model) -> dict[str, tuple[str, ...]]:
    """A sphere request's grid, points and bandwidth are the experiment's sphere_grid (S^2; beyond, the grid
    is fixed and the harmonic sum's work grows with n_points), n_points and sphere_bandwidth; a circle
    request's bandwidth is its bandwidth."""
    points = getattr(request, "points", None)
    if points is not None:
        return {"n_grid": ("sphere_grid",) if points.shape[1] == 3 else ("n_points",), "points": ("n_points",),
                "targets": ("n_points",), "bandwidth": ("sphere_bandwidth",)}
    return {"bandwidth": ("bandwidth",)}
def _smoothness_points(p: dict[str, Any], split: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) point sets of one split of a task of smoothness-generalization (fixed samples)."""
    if split == "sphere":
        return _sphere(p["sphere_n_train"], p["sphere_dim"]), _sphere(p["sphere_n_test"], p["sphere_dim"])
    return _sphere(p["n_train"], 64), _sphere(p["n_test"], 64)


def _smoothness_generalization(p: dict[str, Any]) -> Plan:
    """Per split and task: each network's training Gram and test-train kernels (both kernels in one request),
    the conv kernels of the images, and per trained network (ten classes + the sphere's one) its training and
    its input Jacobians; once per network, kernel and sphere: the Funk-Hecke spectrum."""
    from engine.experiments.smoothness_generalization import conv_networks, dense_networks

    plan: Plan = []
    for task, d in (("digits", 64), ("sphere", p["sphere_dim"])):
        x, x_test = _smoothness_points(p, task)
        for _, _, arch in dense_networks(p["depths"], p["alphas"]):
            spec = ArchitectureSpec.model_construct(**arch.to_dict())
            plan += [(p["splits"], kernels.KernelsRequest.model_construct(x=x, x2=None, architecture=spec,
                                                                          kernels=p["kernels"])),
                     (p["splits"], kernels.KernelsRequest.model_construct(x=x_test, x2=x, architecture=spec,
                                                                          kernels=p["kernels"]))]
            plan += [(1, spectrum.SpectrumRequest.model_construct(architecture=spec, kernel=k, n_grid=8, x=None,
                                                                  sphere_dim=d, k_max=p["k_max"]))
                     for k in p["kernels"]]
        classes = 10 if task == "digits" else 1
        for _, _, arch in dense_networks(p["net_depths"], p["net_alphas"]):
            spec = ArchitectureSpec.model_construct(**arch.to_dict())
            net = {"width": p["width"], "n_init": p["n_init"], "steps": p["steps"]}
            plan += [(p["splits"] * classes, _train(spec, x, net, x_test)),
                     (p["splits"] * classes, _jacobians(spec, x_test[: p["gradient_points"]], net))]
    images = _sphere(p["conv_n_train"], 64).reshape(-1, 8, 8, 1)
    tests = _sphere(p["conv_n_test"], 64).reshape(-1, 8, 8, 1)
    for _, _, arch in conv_networks(p["conv_depths"], p["conv_alphas"], p["conv_readout"]):
        conv = ConvArchitectureSpec.model_construct(**arch.to_dict())
        plan += [(p["splits"], kernels.KernelsRequest.model_construct(x=images, x2=None, architecture=conv,
                                                                      kernels=p["kernels"])),
                 (p["splits"], kernels.KernelsRequest.model_construct(x=tests, x2=images, architecture=conv,
                                                                      kernels=p["kernels"]))]
    return plan


JVP_FACTOR = 1.0  # a forward-mode pass per input direction, batched: about the recursion's own work per direction
                  # (conv kernels, flatten, 200 images, L = 2-5: 0.5 s a test image for 64 directions, loaded VM)


def _smoothness_generalization_extra(p: dict[str, Any]) -> list[Term]:
    """The kernel predictors' input Jacobians (one forward-mode pass per input direction, all kernels at once),
    and per fit the solve, the eigendecomposition, the harmonic energies of mu (k_max (n, n) steps) and the
    heat-kernel Gram of the RKHS ratio."""
    from engine.conv.tiles import pixel_pairs

    dense = (1 + len(p["alphas"])) * sum(p["depths"])
    work, linear = 0.0, 0.0
    for n, m, d in ((p["n_train"], p["n_test"], 64), (p["sphere_n_train"], p["sphere_n_test"], p["sphere_dim"])):
        work += dense * min(p["gradient_points"], m) * n * d * JVP_FACTOR / KERNEL_ENTRY_LAYERS_PER_S
        fits = (1 + len(p["alphas"])) * len(p["depths"]) * len(p["kernels"])
        linear += fits * (n**3 * (CHOLESKY_S_PER_N3 + EIGH_S_PER_N3 + LSTSQ_S_PER_N3)
                          + 4.0 * p["k_max"] * n * n * ELEMENTWISE_S)
    conv = (1 + len(p["conv_alphas"])) * sum(p["conv_depths"])
    pairs = pixel_pairs(p["conv_readout"], (8, 8))
    work += (conv * min(p["conv_gradient_points"], p["conv_n_test"]) * p["conv_n_train"] * pairs * 64 * JVP_FACTOR
             / CONV_PAIR_LAYERS_PER_S)
    return [Term(p["splits"] * work, "parameters.gradient_points", "the kernel predictors' input Jacobians by "
                 "forward-mode autodiff: test points x training points x input directions x depth",
                 "lower gradient_points or conv_gradient_points, or use the flatten readout"),
            Term(p["splits"] * linear, "parameters.n_train", "per fit: Cholesky, eigh and lstsq of the training Gram, "
                 "k_max steps of the harmonic energies", "lower n_train or k_max")]


PLANS: dict[str, Callable[[dict[str, Any]], Plan]] = {
    "kernel-shapes": _kernel_shapes, "interpolation": _interpolation, "finite-vs-infinite": _finite_vs_infinite,
    "beyond-ntk": _beyond_ntk, "lowest-loss": _lowest_loss, "scalar-angle": _lowest_loss, "bounds": _bounds,
    "spectra": _spectra, "digits": _digits, "rkhs-vs-curvature": _rkhs_vs_curvature,
    "spiky-or-stable": _spiky_or_stable, "learning-curves": _learning_curves,
    "conv-spectra": lambda _: [], "nngp-vs-ntk": _nngp_vs_ntk,
    "smoothness-generalization": _smoothness_generalization}
EXTRA: dict[str, Callable[[dict[str, Any]], list[Term]]] = {
    "lowest-loss": _lowest_loss_extra, "scalar-angle": _lowest_loss_extra, "learning-curves": _learning_curves_extra,
    "conv-spectra": _conv_spectra_compute, "smoothness-generalization": _smoothness_generalization_extra}
MEMORY: dict[str, Callable[[dict[str, Any]], list[Term]]] = {"conv-spectra": _conv_spectra_memory}
# per experiment, where FIELDS would name the wrong parameter: a request -> its own field -> parameter map
REQUEST_FIELDS: dict[str, Callable[[Model], dict[str, tuple[str, ...]]]] = {"nngp-vs-ntk": _nngp_vs_ntk_fields}
# an operation's field -> the experiment parameter that sets it (the first that the experiment has)
FIELDS = {"width": ("width",), "n_init": ("n_init",), "steps": ("steps",), "record_every": ("steps",),
          "track_ntk": ("n_trains",), "x_train": ("n_trains", "n_train", "n_points"),
          "n_train": ("n_trains", "n_train"), "x_test": ("n_grid",), "n_grid": ("n_grid", "n_angles"),
          "architectures": ("alphas",), "x": ("n_grid", "n_angles", "n_points"), "x2": ("n_angles",),
          "kernels": ("kernels",), "y_train": ("n_trains", "n_train")}


def plan(name: str, params: dict[str, Any]) -> Plan:
    """The operation requests experiment `name` runs with `params` (a full parameter set)."""
    return PLANS[name](params)


def cost(name: str, params: dict[str, Any]) -> Cost:
    """The experiment's cost: its operations' own costs, summed (module docstring)."""
    def field(term: Term, own: dict[str, tuple[str, ...]]) -> str:
        for key in own.get(term.field, FIELDS.get(term.field, ())):
            if key in params:
                return f"parameters.{key}"
        return "parameters"

    def renamed(term: Term, times: int = 1, what: str = "", own: dict[str, tuple[str, ...]] | None = None) -> Term:
        prefix = f"{times} x " if times > 1 else ""
        return replace(term, amount=term.amount * times, field=field(term, own or {}),
                       formula=f"{prefix}{what}{term.formula}")

    compute: list[Term] = [Term(FIGURE_SECONDS, "parameters", "the figure (PNG and SVG)", ""),
                           *(renamed(t) for t in EXTRA.get(name, lambda _: [])(params))]
    heaviest: tuple[float, list[Term]] = (0.0, [])
    for times, request in plan(name, params):
        each = request_cost(request)
        what = f"{type(request).__name__.removesuffix('Request').lower()}: "
        fields = REQUEST_FIELDS[name](request) if name in REQUEST_FIELDS else {}
        compute += [renamed(t, times, what, fields) for t in each.compute if t.amount > 0]
        if each.total("memory") > heaviest[0]:
            heaviest = (each.total("memory"), [renamed(t, 1, what, fields) for t in each.memory])
    own = MEMORY.get(name, lambda _: [])(params)  # memory of work that no operation's cost covers
    if sum(t.amount for t in own) > heaviest[0]:
        heaviest = (sum(t.amount for t in own), own)
    counts = EXPERIMENTS[name].cost(params)
    output = Term(counts.get("output_bytes", 0), "parameters", "the arrays the experiment returns",
                  "use fewer or smaller curves")
    held = replace(output, formula="the arrays the experiment returns, held until it ends")
    return Cost(output=[output], memory=[*heaviest[1], held], compute=compute)


COSTS: dict[type[Model], Callable[[Any], Cost]] = {
    kernels.KernelsRequest: kernels.cost, smoothness.SmoothnessRequest: smoothness.cost,
    regression.RegressionRequest: regression.cost, spectrum.SpectrumRequest: spectrum.cost,
    empirical_kernels.EmpiricalKernelsRequest: empirical_kernels.cost, train.TrainRequest: train.cost}


def request_cost(request: Model) -> Cost:
    """An operation request's cost, by its operation's own `cost`."""
    return COSTS[type(request)](request)

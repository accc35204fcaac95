"""What `smoothness_generalization` measures of one predictor on one split (`smoothness_data.Task`).

Kernel predictors f(x) = K(x, X) A (`engine.jacobians.predictor_weights`): the test error; max ||df/dx||
over the first `gradient_points` test points (autodiff through the kernel, `engine.jacobians`); for the
dense kinds, whose kernels on the unit sphere S^(d-1) are zonal, the paper's curvature mu (eq. 22 on the
sphere, `engine.sphere_smoothness.mu_curvature_spectral`) and the heat-kernel RKHS ratio
(`mu_rkhs_sphere`), both over the sphere of the inputs and summed over the C outputs.

Trained networks: per class one scalar network of width `width` (the infinite-width limit of a C-output
net is C independent kernel regressions, which is what this stack of C networks trains to), n_init
initialisations each, full-batch GD (`engine.training.train`, lr = lr_fraction x the bound
2 / (lambda_min + lambda_max) of the analytic NTK on the training inputs; a class whose training
diverges, the finite network's NTK being larger than the analytic one, is trained again from the same
initialisation at half the step, at most MAX_HALVINGS times), `steps` steps; per initialisation: train
and test error, max ||dF/dx|| of the stack F = (f_1, ..., f_C), the paper's bound B (eqs. 18-21,
`engine.bounds.jacobian_bounds`) and, on classification tasks, the spectrally-normalised margin bound
(`engine.margin_bound`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.experiments.smoothness_data import Task, split_seed, test_error, train_error

MAX_HALVINGS = 4
MARGIN_TERMS = ("margin_bound", "margin_complexity", "margin_train_margin_error", "margin_gamma", "margin_r_a",
                "margin_lipschitz")
Spectra = dict[tuple[Any, str, int, int], tuple[np.ndarray, np.ndarray]]  # (arch, kernel, d, k_max) -> (lam, err)


def sphere_spectrum(arch: Any, kernel: str, d: int, k_max: int, cache: Spectra) -> tuple[np.ndarray, np.ndarray]:
    """The Funk-Hecke eigenvalues lambda_0..lambda_k_max of `arch`'s kernel on S^(d-1) with their error
    estimates (`engine.sphere.funk_hecke_checked`), computed once per key of `cache`."""
    from engine.sphere import funk_hecke_checked, sphere_profile

    key = (arch, kernel, d, k_max)
    if key not in cache:
        lam, err, _ = funk_hecke_checked(lambda t: sphere_profile(arch, d, t, kernel=kernel), d, k_max)
        cache[key] = (lam, err)
    return cache[key]


def numerical_range(k_train: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """weights (n,) or (n, C) without their part in the Gram's numerical null space (eigenvalues <= n eps
    x the largest, `numpy.linalg.matrix_rank`'s rule). A null vector v of a PSD Gram gives the zero
    function (||sum_i v_i K(., x_i)||_H^2 = v^T K v = 0), so this is the same predictor, up to rounding;
    but a Gram of low rank (the linear kernel of the ResNet at alpha = 0, n > d) leaves the ridge solve
    huge weights there, whose products with the eigenvalues' rounding would swamp the harmonic energies."""
    lam, v = np.linalg.eigh(k_train)
    keep = v[:, lam > len(lam) * np.finfo(np.float64).eps * lam[-1]]
    return keep @ (keep.T @ weights)


def kernel_measures(task: Task, arch: Any, grams: dict[str, tuple[np.ndarray, np.ndarray]], *, ridge: float,
                    gradient_points: int, bandwidth: float, k_max: int, cache: Spectra,
                    images: tuple[int, ...] | None = None) -> dict[str, dict[str, float]]:
    """Per kernel of grams {kernel: (K(X, X), K(X_test, X))}: {"test_error", "max_gradient"} of its
    predictor, and for a dense kind (images None) "mu" (degrees <= k_max) and "rkhs" (the heat kernel of
    `bandwidth`, degrees <= its cut-off and k_max). images: the (H, W, C) the conv kinds take the vectors as."""
    from engine.jacobians import conv_kernel_jacobians, dense_kernel_jacobians, operator_norms, predictor_weights
    from engine.sphere_smoothness import Expansion, mu_curvature_spectral, mu_rkhs_sphere

    weights = {k: predictor_weights(k_train, task.y_train, ridge=ridge) for k, (k_train, _) in grams.items()}
    at = task.x_test[:gradient_points]
    if images is None:
        jac = dense_kernel_jacobians(at, task.x_train, weights, arch=arch)
    else:
        shape = (-1, *images)
        jac = conv_kernel_jacobians(at.reshape(shape), task.x_train.reshape(shape), weights, arch=arch)
    out = {}
    for kernel, (k_train, k_test) in grams.items():
        found = {"test_error": test_error(task, k_test @ weights[kernel]),
                 "max_gradient": float(operator_norms(jac[kernel]).max())}
        if images is None:
            lam, err = sphere_spectrum(arch, kernel, task.x_train.shape[1], k_max, cache)
            expansion = Expansion(task.x_train, numerical_range(k_train, weights[kernel]))
            found["mu"] = mu_curvature_spectral(expansion, lam, err)[0]
            found["rkhs"] = mu_rkhs_sphere(expansion, lam, task.x_train, task.y_train, bandwidth=bandwidth)["mu"]
        out[kernel] = found
    return out


def network_measures(task: Task, arch: Any, *, width: int, n_init: int, steps: int, lr_fraction: float,
                     gradient_points: int, margin_quantile: float, delta: float, seed: int,
                     split: int) -> dict[str, np.ndarray]:
    """Per initialisation (n_init,): "test_error", "train_error", "max_gradient", "jacobian_bound",
    "lr_halvings" (the most any class needed, the same for every initialisation), and on a
    classification task the margin bound's terms MARGIN_TERMS (module docstring); seeds per (split, class)."""
    import jax
    import jax.numpy as jnp

    from engine.bounds import jacobian_bounds
    from engine.jacobians import operator_norms, stack_jacobians
    from engine.margin_bound import chain, class_norms, spectral_margin_bound
    from engine.networks import apply, ensemble_member, init_params
    from engine.training import lr_bound, train

    y = task.y_train if task.y_train.ndim == 2 else task.y_train[:, None]
    d = task.x_train.shape[1]
    trained, initial, test = [], [], []
    lr = lr_fraction * lr_bound(arch, task.x_train)
    halvings = 0
    for c in range(y.shape[1]):
        s = split_seed(seed, split, c)
        for halving in range(MAX_HALVINGS + 1):
            try:
                run = train(arch, task.x_train, y[:, c], width=width, seed=s, n_init=n_init, steps=steps,
                            lr=lr / 2**halving, x_test=task.x_test, record_every=steps, predict_every_record=False)
                break
            except ValueError as exc:
                if "diverged" not in str(exc) or halving == MAX_HALVINGS:
                    raise
        halvings = max(halvings, halving)
        trained.append([ensemble_member(run["params"], i) for i in range(n_init)])
        first = init_params(arch, width, d, s, n_init=n_init)
        initial.append([{k: np.asarray(v) for k, v in ensemble_member(first, i).items()} for i in range(n_init)])
        test.append(run["predictions"][-1])  # (n_init, m)
    bound = jacobian_bounds(arch, width, d)["bound"]
    names = ("test_error", "train_error", "max_gradient", "jacobian_bound", "lr_halvings")
    out: dict[str, list[float]] = {k: [] for k in (*names, *(MARGIN_TERMS if task.labels_train is not None else ()))}
    for i in range(n_init):
        members = [trained[c][i] for c in range(y.shape[1])]
        with jax.enable_x64(True):
            fit = np.stack([np.asarray(apply(arch, m, jnp.asarray(task.x_train))) for m in members], axis=1)
        predicted = np.stack([t[i] for t in test], axis=1)
        if task.y_train.ndim == 1:
            fit, predicted = fit[:, 0], predicted[:, 0]
        out["test_error"].append(test_error(task, predicted))
        out["train_error"].append(train_error(task, fit))
        jac = stack_jacobians(arch, members, task.x_test[:gradient_points])
        out["max_gradient"].append(float(operator_norms(jac).max()))
        out["jacobian_bound"].append(bound)
        out["lr_halvings"].append(halvings)
        if task.labels_train is not None:
            norms = class_norms([chain(arch, m, d) for m in members],
                                [chain(arch, initial[c][i], d) for c in range(y.shape[1])])
            terms = spectral_margin_bound(norms, task.x_train, fit, task.labels_train,
                                          margin_quantile=margin_quantile, delta=delta)
            for key in MARGIN_TERMS:
                out[key].append(terms[key.removeprefix("margin_")])
    return {k: np.array(v) for k, v in out.items()}

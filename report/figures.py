"""Figures of the experiments (matplotlib, Agg): one function per experiment, each taking
the plain data of `engine.experiments.run` and returning a Figure titled and labelled like
the paper's, with mu in the legend where the paper shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

Data = dict[str, Any]


def _grid(n_rows: int, n_cols: int, title: str, data: Data) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(max(5.2 * n_cols, 8.0), 3.9 * n_rows), squeeze=False)
    scale = data["labels"]["scale"]
    fig.suptitle(f"{title}  [{scale} scale]", fontsize=12)
    return fig, axes


def kernel_shapes(data: Data) -> Figure:
    kernels = [k for k in ("ntk", "nngp") if k in data]
    depths, curves = data["labels"]["depths"], data["labels"]["curves"]
    fig, axes = _grid(len(kernels), len(depths), "Kernels on the unit circle, normalised to unit peak", data)
    for r, kernel in enumerate(kernels):
        for c, depth in enumerate(depths):
            ax = axes[r, c]
            for k, label in enumerate(curves):
                ax.plot(data["angles"], data[kernel][c, k], label=label)
            ax.set(title=f"{kernel.upper()}, L = {depth}", xlabel="angle between x and x' (rad)",
                   ylabel=f"{kernel.upper()} / peak")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _function_axis(ax: Axes, data: Data, m: int, title: str) -> None:
    """Finish an axis of functions of the angle: the m training samples, labels, legend."""
    ax.plot(data[f"train_angles_{m}"], data[f"train_values_{m}"], "ko", ms=4, label="samples")
    ax.set(title=title, xlabel="angle b (rad)", ylabel="f(b)")
    ax.legend(fontsize=7)


def interpolation(data: Data) -> Figure:
    depths, n_trains, curves = data["labels"]["depths"], data["labels"]["n_trains"], data["labels"]["curves"]
    mu = {(row["L"], row["m"]): row for row in data["tables"]["mu"]}
    fig, axes = _grid(len(depths), len(n_trains), "NTK interpolation of 0.5 cos b + sin 4b", data)
    for i, depth in enumerate(depths):
        for j, m in enumerate(n_trains):
            ax = axes[i, j]
            for c, label in enumerate(curves):
                ax.plot(data["angles"], data["interpolants"][i, j, c], label=f"{label}, mu = {mu[depth, m][label]:.4g}")
            _function_axis(ax, data, m, f"L = {depth}, {m} samples")
    fig.tight_layout()
    return fig


def finite_vs_infinite(data: Data) -> Figure:
    n_trains = data["labels"]["n_trains"]
    width, n_init = data["labels"]["width"], data["labels"]["n_init"]
    fig, axes = _grid(1, 1 + len(n_trains), f"Width-{width} ResNets ({n_init} initialisations) and the NTK", data)
    ax = axes[0, 0]
    for i, row in enumerate(data["empirical_ntk"]):
        ax.plot(data["angles"], row, color="tab:blue", alpha=0.3, lw=0.8, label="empirical NTK" if i == 0 else None)
    ax.plot(data["angles"], data["analytic_ntk"], "k", lw=2, label="analytic NTK")
    ax.set(title="Theta(x0, x) on the circle", xlabel="angle (rad)", ylabel="NTK")
    ax.legend(fontsize=7)
    for j, m in enumerate(n_trains):
        ax = axes[0, 1 + j]
        for i, row in enumerate(data[f"predictions_{m}"]):
            ax.plot(data["grid"], row, color="tab:orange", alpha=0.35, lw=0.8,
                    label="trained networks" if i == 0 else None)
        ax.plot(data["grid"], data[f"ntk_mean_{m}"], "k", lw=1.8, label="NTK regression at the same t")
        ax.plot(data["grid"], data[f"interpolant_{m}"], "k--", lw=1, label="NTK interpolant (t = inf)")
        _function_axis(ax, data, m, f"GD on {m} samples")
    fig.tight_layout()
    return fig


def beyond_ntk(data: Data) -> Figure:
    optimizers, n_trains = data["labels"]["optimizers"], data["labels"]["n_trains"]
    mu = {(r["optimizer"], r["m"], r["network"]): r["mu mean"] for r in data["tables"]["mu"]}
    init = data["labels"].get("parametrization", "standard")
    fig, axes = _grid(len(optimizers), len(n_trains), f"{init.capitalize()} initialisation, batch size 1: mean "
                      "prediction", data)
    for i, optimizer in enumerate(optimizers):
        for j, m in enumerate(n_trains):
            ax = axes[i, j]
            for label, curve in zip(data["labels"]["curves"][f"{optimizer}_{m}"], data[f"mean_{optimizer}_{m}"],
                                    strict=True):
                ax.plot(data["grid"], curve, label=f"{label}, mu = {mu[optimizer, m, label]:.4g}")
            _function_axis(ax, data, m, f"{optimizer.upper()}, {m} samples")
    fig.tight_layout()
    return fig


def lowest_loss(data: Data) -> Figure:
    """Figs. 4-5: every kept network (thin) and their mean (thick), one panel per network."""
    curves, labels = data["labels"]["curves"], data["labels"]
    mu = {r["network"]: r for r in data["tables"]["mu"]}
    where = "the angle b as a 1-D input" if labels["input"] == "angle" else "inputs (cos b, sin b)"
    fig, axes = _grid(1, len(curves), f"Adam, each network at its lowest training loss: {where}, "
                      f"{labels['parametrization']} initialisation, width {labels['width']}", data)
    for c, label in enumerate(curves):
        ax = axes[0, c]
        for i, f in enumerate(data["predictions"][c]):
            ax.plot(data["grid"], f, color=f"C{c}", alpha=0.35, lw=0.8, label="networks" if i == 0 else None)
        ax.plot(data["grid"], data["predictions"][c].mean(0), color=f"C{c}", lw=2,
                label=f"mean; mu = {mu[label]['mu mean']:.4g} +- {mu[label]['mu std']:.2g}")
        ax.plot(data["train_angles"], data["train_values"], "ko", ms=3, label="samples")
        ax.set(title=label, xlabel="angle b (rad)", ylabel="f(b)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bounds(data: Data) -> Figure:
    fig, axes = _grid(1, 3, "Jacobian bounds (eqs. 18-21) and measured ||df/dx||", data)
    ax = axes[0, 0]
    for alpha, ratio in zip(data["labels"]["alphas"], data["ratio"], strict=True):
        ax.semilogy(data["depths"], ratio, label=f"alpha = {alpha:g}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(title="B_ResNet / B_MLP", xlabel="depth L", ylabel="ratio")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.plot(data["depths"], data["threshold"], "k", label="largest alpha with B_ResNet <= B_MLP")
    ax.axhline(2 / 9, color="gray", ls="--", lw=0.8, label="limit 2/9")
    ax.set(title="alpha threshold", xlabel="depth L", ylabel="alpha")
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    rows = data["tables"]["measured"]
    positions = np.arange(len(rows))
    ax.bar(positions - 0.2, [r["max ||df/dx|| at init (mean)"] for r in rows], 0.4, label="at initialisation")
    ax.bar(positions + 0.2, [r["max ||df/dx|| trained (mean)"] for r in rows], 0.4, label="after GD")
    ax.set_xticks(positions, [r["network"] for r in rows], fontsize=7)
    ax.set(title=f"max ||df/dx|| on the circle, width {data['labels']['width']}", ylabel="||df/dx||")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def spectra(data: Data) -> Figure:
    depths, curves = data["labels"]["depths"], data["labels"]["curves"]
    fig, axes = _grid(1, len(depths) + 1, "Kernel spectra (Fig. 8) and Gram conditioning", data)
    keep = data["frequencies"] >= 1
    for c, depth in enumerate(depths):
        ax = axes[0, c]
        for k, label in enumerate(curves):
            ax.loglog(data["frequencies"][keep], np.maximum(data["magnitudes"][c, k][keep], 1e-18), label=label)
        ax.set(title=f"|Fourier coefficient| of the NTK profile, L = {depth}", xlabel="frequency k",
               ylabel="magnitude")
        ax.legend(fontsize=7)
    ax = axes[0, -1]
    for k, label in enumerate(curves):
        inverse = data["inverse_condition"][k]
        ok = inverse > 0
        ax.semilogy(data["condition_depths"][ok], 1 / inverse[ok], "o-", label=label)
    ax.set(title="condition number of the NTK Gram matrix", xlabel="depth L", ylabel="lambda_max / lambda_min")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def digits(data: Data) -> Figure:
    n_trains, depths, curves = data["labels"]["n_trains"], data["labels"]["depths"], data["labels"]["curves"]
    fig, axes = _grid(1, len(n_trains), "Digits 0 vs 8 (scikit-learn 8x8) by NTK regression", data)
    for i, n in enumerate(n_trains):
        ax = axes[0, i]
        for c, label in enumerate(curves):
            acc = data["accuracy"][i, :, c]
            ax.errorbar(depths, acc.mean(axis=-1), yerr=acc.std(axis=-1), marker="o", capsize=3, label=label)
        ax.set(title=f"N = {n} training samples", xlabel="depth L", ylabel="test accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def rkhs_vs_curvature(data: Data) -> Figure:
    curves, n_trains = data["labels"]["curves"], data["labels"]["n_trains"]
    fig, axes = _grid(1, len(n_trains), f"RKHS ratio against mu (eq. 22), L = {data['labels']['depth']}", data)
    for i, m in enumerate(n_trains):
        ax = axes[0, i]
        for c, label in enumerate(curves):
            ax.loglog(data["mu_curvature"][i, c], data["mu_rkhs"][i, c], "o", label=label)
        ax.set(title=f"{m} samples", xlabel="mu, eq. 22 (smaller = smoother)",
               ylabel="mu_rkhs (larger = smoother)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def spiky_or_stable(data: Data) -> Figure:
    """Per kernel: half-width against depth, the profiles at the deepest depth, the median degree."""
    kernels, curves, depths = data["labels"]["kernels"], data["labels"]["curves"], data["depths"]
    d = data["labels"]["sphere_dim"]
    fig, axes = _grid(len(kernels), 3, f"Spiky or stable: kernel profiles on S^{d - 1} against depth", data)
    degrees = np.degrees(data["angles"])
    for r, kernel in enumerate(kernels):
        name = kernel.upper()
        for c, label in enumerate(curves):
            style = "--" if "L^-" in label else "-"
            axes[r, 0].semilogx(depths, np.degrees(data[f"half_width_{kernel}"][c]), style, marker="o", ms=3,
                                label=label)
            axes[r, 1].plot(degrees, data[f"profile_{kernel}"][c], style)
            axes[r, 2].loglog(depths, data[f"median_degree_{kernel}"][c], style, marker="o", ms=3)
        axes[r, 0].set(title=f"{name}: half-width of K(cos th) / K(1)", xlabel="depth L", ylabel="half-width (deg)")
        axes[r, 0].legend(fontsize=7)
        axes[r, 1].set(title=f"{name} / peak at L = {depths[-1]:g}", xlabel="angle th (deg)", ylabel="K / K(1)")
        axes[r, 2].set(title=f"{name}: median Funk-Hecke degree on S^{d - 1}", xlabel="depth L",
                       ylabel="median degree")
    fig.tight_layout()
    return fig


def conv_spectra(data: Data) -> Figure:
    """Per readout and kernel: the Gram eigenvalues at the deepest depth, condition numbers and decay
    exponents against depth."""
    kernels, curves, depths = data["labels"]["kernels"], data["labels"]["curves"], data["depths"]
    readouts = data["labels"]["readouts"]
    lo, hi = data["labels"]["fit_ranks"]
    rows = [(r, readout, kernel) for r, readout in enumerate(readouts) for kernel in kernels]
    fig, axes = _grid(len(rows), 3, "Conv Gram matrices on 8x8 digits, with (conv-ResNet) and without (CNN) "
                      "skips", data)
    for i, (r, readout, kernel) in enumerate(rows):
        name = f"{kernel.upper()}, {readout}"
        eig = data[f"eigenvalues_{kernel}"][r]
        ranks = np.arange(1, eig.shape[-1] + 1)
        for c, label in enumerate(curves):
            positive = eig[c, -1] > 0
            axes[i, 0].loglog(ranks[positive], eig[c, -1][positive], label=label)
            cond = data[f"condition_{kernel}"][r, c]
            ok = cond > 0
            axes[i, 1].semilogy(depths[ok], cond[ok], marker="o")
            axes[i, 2].errorbar(depths, data[f"exponent_{kernel}"][r, c], yerr=data[f"exponent_se_{kernel}"][r, c],
                                marker="o", capsize=3)
        for x in (lo, hi):
            axes[i, 0].axvline(x, color="gray", lw=0.6, ls=":")
        axes[i, 0].set(title=f"{name}: Gram eigenvalues / mean diagonal, L = {depths[-1]:g}", xlabel="rank i",
                       ylabel="e_i")
        axes[i, 0].legend(fontsize=7)
        axes[i, 1].set(title=f"{name}: condition number e_1 / e_N", xlabel="depth L", ylabel="e_1 / e_N")
        axes[i, 2].set(title=f"{name}: decay exponent, ranks {lo}-{hi}", xlabel="depth L",
                       ylabel="slope of log e_i vs log i")
    fig.tight_layout()
    return fig


def learning_curves(data: Data) -> Figure:
    """Rows: sphere dimensions; columns: kernels. Measured test error (markers, standard error of the
    mean) and the spectral theory (lines) against N."""
    kernels, curves, dims = data["labels"]["kernels"], data["labels"]["curves"], data["labels"]["sphere_dims"]
    n = data["n_trains"]
    fig, axes = _grid(len(dims), len(kernels), "Learning curves on the sphere: measured (markers) and predicted "
                      "from the spectrum (lines)", data)
    for i, d in enumerate(dims):
        for j, kernel in enumerate(kernels):
            ax = axes[i, j]
            for c, label in enumerate(curves):
                mean, std = data[f"measured_{kernel}"][i, c], data[f"measured_std_{kernel}"][i, c]
                err = std / np.sqrt(data[f"fits_{kernel}"][i, c])
                ax.errorbar(n, mean, yerr=err, fmt="o", ms=3, capsize=2, color=f"C{c}", label=label)
                ax.loglog(n, data[f"theory_{kernel}"][i, c], "-", color=f"C{c}", lw=1)
            ax.set(title=f"{kernel.upper()}, S^{d - 1} (d = {d})", xlabel="training points N",
                   ylabel="test error E (f - f*)^2")
            if i == 0 and j == 0:
                ax.plot([], [], "k-", lw=1, label="theory (Bordelon et al.)")
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def nngp_vs_ntk(data: Data) -> Figure:
    """One row per domain (the circle per m, each sphere): mu (eq. 22) and the RKHS ratio of the NTK
    (solid) and NNGP (dashed) interpolants against the network, one colour per depth."""
    labels = data["labels"]
    domains, depths, curves, kernels = labels["domains"], labels["depths"], labels["curves"], labels["kernels"]
    fig, axes = _grid(len(domains), 2, "NNGP against NTK interpolants: mu (eq. 22, smaller = smoother) and the "
                      "RKHS ratio (larger = smoother)", data)
    x = np.arange(len(curves))
    names = [c.replace("ResNet ", "") for c in curves]
    for i, domain in enumerate(domains):
        curvature = "mu (eq. 22)" if domain.startswith("circle") else "mu = ||Delta f|| / ||f||"
        for m, (what, key) in enumerate(((curvature, "mu_curvature"), ("RKHS ratio", "mu_rkhs"))):
            ax = axes[i, m]
            for j, depth in enumerate(depths):
                for k, kernel in enumerate(kernels):
                    ax.semilogy(x, data[key][i, j, :, k], "-o" if kernel == "ntk" else "--s", ms=4, color=f"C{j}",
                                label=f"{kernel.upper()}, L = {depth}")
            ax.set_xticks(x, names, fontsize=7)
            ax.set(title=f"{domain}: {what}", ylabel=what)
            if i == 0 and m == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


SMOOTHNESS_MEASURES = {"mu": "mu (curvature, eq. 22 on the sphere)", "rkhs": "RKHS ratio (larger: smoother)",
                       "max_gradient": "max ||df/dx|| over test points", "jacobian_bound": "the paper's bound B",
                       "margin_bound": "margin bound (BFT 2017)"}
SMOOTHNESS_TASKS = {"digits": "digits (vectors)", "images": "digits (8x8 images, conv)", "sphere": "sphere targets"}


def smoothness_generalization(data: Data) -> Figure:
    """Rows: tasks; columns: measures. Each network's mean measure (log axis) against its mean test error,
    one colour per predictor (NTK, NNGP, trained), one marker per family; Spearman's rho in the legend."""
    rho = {(r["task"], r["predictor"], r["measure"]): r["rho"] for r in data["tables"]["spearman"]
           if r["family"] == "all" and r["against"] == "test error"}
    tasks = [t for t in SMOOTHNESS_TASKS if any(key[0] == t for key in rho)]
    fig, axes = _grid(len(tasks), len(SMOOTHNESS_MEASURES), "Smoothness against test error, one point per network",
                      data)
    markers, colours = {"MLP": "o", "ResNet": "s", "CNN": "^", "conv-ResNet": "v"}, {"ntk": 0, "nngp": 1, "net": 2}
    for i, task in enumerate(tasks):
        for j, (measure, name) in enumerate(SMOOTHNESS_MEASURES.items()):
            ax = axes[i, j]
            present = [p for p in ("ntk", "nngp", "net") if (task, p, measure) in rho]
            if not present:
                ax.axis("off")
                continue
            for p in present:
                key = f"{task}_{p}"
                x, y = data[f"{key}_{measure}"].mean(axis=1), data[f"{key}_test_error"].mean(axis=1)
                for family, marker in markers.items():
                    pick = [k for k, f in enumerate(data["labels"]["families"][key]) if f == family]
                    if pick:
                        ax.scatter(x[pick], y[pick], marker=marker, color=f"C{colours[p]}", s=22)
                r = rho[(task, p, measure)]
                ax.scatter([], [], color=f"C{colours[p]}", label=f"{data['labels']['predictors'][p]}, rho = "
                           + ("-" if r is None else f"{r:.2f}"))
            ax.set(xscale="log", title=f"{SMOOTHNESS_TASKS[task]}", xlabel=name, ylabel="test error")
            ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.text(0.01, 0.005, "markers: o MLP, s ResNet, ^ CNN, v conv-ResNet (each a network's mean over splits and "
             "initialisations); rho: Spearman's, over all networks of the panel's predictor", fontsize=8)
    return fig


FIGURES = {"kernel-shapes": kernel_shapes, "interpolation": interpolation, "finite-vs-infinite": finite_vs_infinite,
           "beyond-ntk": beyond_ntk, "lowest-loss": lowest_loss, "scalar-angle": lowest_loss, "bounds": bounds,
           "spectra": spectra, "digits": digits, "rkhs-vs-curvature": rkhs_vs_curvature,
           "spiky-or-stable": spiky_or_stable,
           "learning-curves": learning_curves,
           "conv-spectra": conv_spectra,
           "nngp-vs-ntk": nngp_vs_ntk, "smoothness-generalization": smoothness_generalization}


def save(name: str, data: Data, folder: Path) -> list[Path]:
    """Draw experiment `name` and write folder/figure.png and folder/figure.svg."""
    fig = FIGURES[name](data)
    paths = [folder / "figure.png", folder / "figure.svg"]
    try:
        for path in paths:
            fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return paths

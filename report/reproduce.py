"""`reskernel reproduce`: run experiments, write their figures, data and a report that sets
each measured table beside the published one."""

from __future__ import annotations

import csv
import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.experiments import EXPERIMENTS, run

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

PRINTED_DIGITS = 4  # the paper prints mu to 4 significant digits (58.36, 4.090, 1.000)


def jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """The experiment's data as JSON values (arrays as nested lists)."""
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in data.items()}


def progress_bars(console: Console) -> Progress:
    """One bar per experiment (name, bar, percentage, elapsed time, the experiment's message), on stderr."""
    return Progress(TextColumn("{task.description:>18}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[message]}"), console=console)


def summary_table(rows: list[tuple[str, str, float]]) -> Table:
    """The run at a glance: each experiment, how it ended, its seconds."""
    table = Table(title="reskernel reproduce")
    table.add_column("experiment")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    for name, result, seconds in rows:
        table.add_row(name, result if result == "ok" else f"[red]{result}[/red]", f"{seconds:.0f}")
    return table


def write_experiment(name: str, data: dict[str, Any], folder: Path) -> None:
    """folder/data.json, one CSV per table, figure.png and figure.svg."""
    from report.figures import save

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.json").write_text(json.dumps(jsonable(data), allow_nan=False))
    for table, rows in data["tables"].items():
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with open(folder / f"{table}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
    save(name, data, folder)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return ("-" if value is None else str(value)).replace("|", "\\|")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _mu_comparison(data: dict[str, Any]) -> str:
    """Our mu beside the published one, to the printed digits, with every difference named;
    only where the published table applies (the paper's kernel, ridge and grid)."""
    if "published_mu" not in data["tables"]:
        p = data["labels"]["parameters"]
        return (f"The published mu table (ReLU NTK, ridge 1e-10, 4096-angle grid) does not apply to these parameters "
                f"(kernel {p['kernel']}, ridge {p['ridge']:g}, n_grid {p['n_grid']}), so none is set beside ours.\n")
    rows, differences = [], []
    tables = {(r["L"], r["m"]): r for r in data["tables"]["published_mu"]}
    for row in data["tables"]["mu"]:
        published = {k: v for k, v in tables.get((row["L"], row["m"]), {}).items() if k not in ("L", "m")}
        line = {"L": row["L"], "m": row["m"]}
        for label, value in row.items():
            if label in ("L", "m"):
                continue
            ours = f"{value:#.{PRINTED_DIGITS}g}"
            if label in published:
                theirs = f"{published[label]:#.{PRINTED_DIGITS}g}"
                same = float(ours) == float(theirs)
                line[label] = f"{ours} / {theirs}" + ("" if same else " **differs**")
                if not same:
                    differences.append((row["L"], row["m"], label, value, published[label]))
            else:
                line[label] = f"{ours} / (not published)"
        rows.append(line)
    text = "mu (eq. 22), ours / published, to the printed digits:\n\n" + markdown_table(rows) + "\n\n"
    if not differences:
        return text + "Every published value in this table is reproduced to the printed digits.\n"
    named = "; ".join(f"L = {d}, m = {m}, {label}: ours {ours:.6g}, published {theirs}"
                      for d, m, label, ours, theirs in differences)
    worst = max(abs(ours - theirs) / theirs for _, _, _, ours, theirs in differences)
    known = {(15, 6, "ResNet alpha=1"), (15, 10, "ResNet alpha=1")}
    if {(d, m, label) for d, m, label, _, _ in differences} <= known:
        return text + (f"Differences: {named} (at most {worst:.2%} relative). These are the two known L = 15, "
                       "alpha = 1 entries. They do not come from our solve: the duplicated sample at b = pi is merged "
                       "exactly and the interpolant is checked against a 30-digit solve of a hand-written recursion "
                       "(tests/engine/test_regression.py), and our kernels match neural-tangents' to 6e-9 relative or "
                       "better on the same architectures (tests/engine/test_analytic.py), so we take them to come from "
                       "the paper's own numerics.\n")
    return text + f"Differences: {named} (at most {worst:.2%} relative).\n"


def _smoother(rows: list[dict[str, Any]], where: str, column: str = "mu mean") -> str:
    """The paper's claim on one mu table: ResNet alpha = 0.1 smoother (smaller mu) than the MLP."""
    mus = {r["network"]: r[column] for r in rows if r.get(column) is not None}
    if "MLP" not in mus or "ResNet alpha=0.1" not in mus:
        return f"{where}: the table lacks the MLP or the ResNet alpha = 0.1, so the claim is not checked"
    holds = mus["ResNet alpha=0.1"] < mus["MLP"]
    return (f"{where}: ResNet alpha=0.1 mu {mus['ResNet alpha=0.1']:.4g} vs MLP {mus['MLP']:.4g} "
            f"({'smoother, as the paper says' if holds else 'NOT smoother'})")


def _spiky_or_stable(data: dict[str, Any]) -> str:
    """Which profiles become spiky with depth and which keep their shape, from the half-widths."""
    labels, depths = data["labels"], data["labels"]["depths"]
    if len(depths) < 2:
        return "One depth only: nothing to say about depth."
    d = labels["sphere_dim"]
    lines = ["**Question** (Belfer, Geifman, Galun & Basri 2021): as depth grows, does the kernel of points on "
             "the sphere become a spike (every pair of distinct inputs alike, only x = x' stands out) or keep its "
             "shape, and how does the balance between skip and residual branch decide it?", "",
             f"**Setup**: unit vectors of R^{d} (S^{d - 1}); the normalised profile p(th) = K(cos th) / K(1) of "
             "the NTK and NNGP of the MLP and of ResNets (sigma_w = sigma_v = 1, no biases, "
             f"{data['labels']['parameters']['activation']}) with a fixed alpha or alpha = L^-gamma. Half-width: "
             "the smallest angle at which p falls half its way from 1 to its minimum over [0, pi] (grid, then a "
             "finer grid in the bracket). Median degree: the smallest k whose Funk-Hecke degrees 1..k hold half "
             f"of the non-constant power 1 - lambda_0 (k <= {labels['k_max']}).", "",
             f"Half-width from L = {depths[0]} to L = {depths[-1]} (a linear kernel's is 90 deg):"]
    for kernel in labels["kernels"]:
        width = np.degrees(data[f"half_width_{kernel}"])
        verdicts = []
        for c, label in enumerate(labels["curves"]):
            first, last = width[c, 0], width[c, -1]
            ratio = last / first
            if ratio < 0.5:
                verdict = f"spiky (narrows {first / last:.3g}x)"
            elif ratio < 0.9:
                verdict = f"narrows ({first / last:.3g}x)"
            elif ratio <= 1.1:
                verdict = "keeps its shape"
            else:
                verdict = "widens towards the linear kernel"
            verdicts.append(f"{label} {first:.3g} -> {last:.3g} deg, {verdict}")
        lines.append(f"- {kernel.upper()}: " + "; ".join(verdicts) + ".")
        if "MLP" in labels["curves"]:
            floor = float(data[f"minimum_{kernel}"][labels["curves"].index("MLP"), -1])
            mlp = width[labels["curves"].index("MLP")]
            answer = "gets spiky" if mlp[-1] < 0.5 * mlp[0] else "does not get spiky"
            lines.append(f"  The MLP {answer} with depth ({kernel.upper()} half-width {mlp[0]:.3g} -> {mlp[-1]:.3g} "
                         f"deg); its normalised {kernel.upper()} has its minimum at {floor:.4g} of its peak at "
                         f"L = {depths[-1]}" + (" (the profile flattens towards a constant as well: the layers' "
                                                "correlation tends to 1 at every angle)." if floor > 0.9 else "."))
    stable = [label for c, label in enumerate(labels["curves"])
              if all(0.9 <= data[f"half_width_{k}"][c, -1] / data[f"half_width_{k}"][c, 0] <= 1.1
                     for k in labels["kernels"])]
    lines += ["", "Keep their shape (half-width within 10% of its value at the first depth, every kernel): "
              + (", ".join(stable) if stable else "none") + "."]
    lines += ["", "Reading: a residual branch scaled so that L alpha^2 stays bounded (alpha = L^-1/2) keeps the "
              "profile's shape; a fixed alpha, or alpha = L^-gamma with gamma < 1/2, lets L alpha^2 grow and the "
              "kernel becomes spiky like the MLP's, later for smaller alpha; gamma > 1/2 sends the residual "
              "branch to zero and the kernel to the linear one (90 deg). Belfer et al. (2021) show that this "
              "balance decides between spiky and stable; gamma = 1/2, read here, is where the residual branches' "
              "summed variance L alpha^2 stays of order one. Largest quadrature change of lambda_k against a "
              f"finer rule: {float(data['quadrature_error'][0]):.1e}."]
    return "\n".join(lines)


def _conv_spectra(data: dict[str, Any]) -> str:
    """Barzilai et al.'s two claims checked on the data: the same decay with and without skips, and
    better conditioning with skips at finite depth."""
    labels = data["labels"]
    curves, depths = labels["curves"], labels["depths"]
    lo, hi = labels["fit_ranks"]
    p = labels["parameters"]
    lines = ["**Question** (Barzilai, Geifman, Galun & Basri, ICLR 2023): do skip connections change the "
             "eigenvalue decay of convolutional kernels (they claim not, for ReLU), and do they make the Gram "
             "matrices better conditioned at finite depth (they claim so)?", "",
             f"**Setup**: {p['n_images']} of scikit-learn's 8x8 digits as images (N, 8, 8, 1), "
             + ("centred, " if p["center"] else "") + "each scaled to unit mean square pixel; ReLU, "
             f"{p['filter_size']}x{p['filter_size']} filters, circular padding, readouts "
             f"{', '.join(labels['readouts'])}, sigma_w = sigma_v = 1, no biases; each Gram matrix divided by its "
             f"mean diagonal. Decay exponent: the slope of log e_i against log i over ranks {lo}..{hi}, +- its "
             "standard error. A cell agrees on decay when the exponents differ by at most 2 combined standard "
             "errors; it is better conditioned when its e_1 / e_N is below the CNN's at the same depth.", ""]
    for r, readout in enumerate(labels["readouts"]):
        for kernel in labels["kernels"]:
            slope, se = data[f"exponent_{kernel}"][r], data[f"exponent_se_{kernel}"][r]
            cond = data[f"condition_{kernel}"][r]
            same, better, cells, notes = 0, 0, 0, []
            for c in range(1, len(curves)):
                for j in range(len(depths)):
                    cells += 1
                    if abs(slope[c, j] - slope[0, j]) <= 2 * float(np.hypot(se[c, j], se[0, j])):
                        same += 1
                    if 0 < cond[c, j] < cond[0, j] or (cond[0, j] == 0 < cond[c, j]):
                        better += 1
                notes.append(f"{curves[c]}: exponent {slope[c, 0]:.2f} -> {slope[c, -1]:.2f}, condition "
                             f"{cond[c, 0]:.3g} -> {cond[c, -1]:.3g}")
            lines.append(f"- {kernel.upper()}, {readout}: CNN exponent {slope[0, 0]:.2f} -> {slope[0, -1]:.2f}, "
                         f"condition {cond[0, 0]:.3g} -> {cond[0, -1]:.3g} (L = {depths[0]} -> {depths[-1]}); "
                         + "; ".join(notes) + f". Same decay as the CNN: {same} of {cells} (network, depth) cells; "
                         f"better conditioned than the CNN: {better} of {cells}.")
    lines += ["", "Reading (of the quick scale's numbers: 64 images, L = 1 to 8). Decay: on these finite Gram "
              "matrices the exponents part with depth: the CNN's spectrum flattens fastest as L grows, a "
              "conv-ResNet's more slowly, the more slowly the smaller alpha, so the fitted exponents agree at most "
              "at L = 1. Conditioning: the skip path does not help by itself. With the pool readout it is the "
              "stem's linear kernel pooled, (mean pixel of x) (mean pixel of x'), a rank-one matrix, so a "
              "conv-ResNet's Gram is that plus alpha^2 times the branches': at L = 1 its eigenvalues beyond the "
              "first are the same for every alpha up to a factor, and as alpha falls the rank-one part dominates "
              "and e_1 / e_N grows. The one place where skips condition better, as Barzilai et al. say, is the "
              "NNGP with the flatten readout from L = 2 on (alpha = 1 stays near 820 while the CNN's e_1 / e_N "
              "grows from about 800 to 1400 by L = 8); for the NTK the CNN's Gram is the better conditioned "
              "nearly everywhere. A finite Gram matrix's decay over a few dozen ranks is not the asymptotic "
              "eigenvalue decay of the integral operator that Barzilai et al. analyse, so where the cells above "
              "disagree with their claims, this is what the data at these sizes show, not a refutation of the "
              "asymptotics."]
    return "\n".join(lines)

def _learning_curves(data: dict[str, Any]) -> str:
    """How far the measured curves are from the spectral theory, per sphere dimension."""
    p = data["labels"]["parameters"]
    lines = ["**Question**: can the learning curve of kernel regression on the sphere be predicted before any "
             "training, from the kernel's Funk-Hecke spectrum alone (Bordelon, Canatar & Pehlevan, ICML 2020; "
             "Canatar et al., Nature Communications 2021), and which network learns which target faster?", "",
             "**Setup**: inputs uniform on S^(d-1); target f* = sum_k sqrt(p_k N(d, k)) P_(k,d)(x . z_k) with "
             f"degrees {p['target_degrees']} and powers {p['target_powers']} (random poles z_k per draw), label "
             f"noise sigma = {p['noise']:g}; kernel regression with ridge {p['ridge']:g} x mean diagonal; "
             f"test error E_x (f - f*)^2 on {p['n_test']} fresh points, averaged over up to {p['draws']} x 16 "
             "training sets. Theory: kappa from 1 = lambda / kappa + sum_k N(d, k) lambda_k / (P lambda_k + kappa) "
             "(+ the tail beyond k_max over kappa), gamma = sum_k N(d, k) P lambda_k^2 / (P lambda_k + kappa)^2, "
             "E_g = (sum_k p_k kappa^2 / (P lambda_k + kappa)^2 + sigma^2 gamma) / (1 - gamma), lambda_k the "
             f"Funk-Hecke eigenvalues of the kernel / K(1) up to k = {p['k_max']}.", ""]
    rows = data["tables"]["agreement"]
    for d in data["labels"]["sphere_dims"]:
        here = [r for r in rows if r["d"] == d]
        median = float(np.median([r["median |measured / theory - 1|"] for r in here]))
        worst = max(here, key=lambda r: r["max |measured / theory - 1|"])
        i = data["labels"]["sphere_dims"].index(d)
        above = sum(int(np.sum(data[f"measured_{k}"][i] > data[f"theory_{k}"][i])) for k in data["labels"]["kernels"])
        total = sum(data[f"theory_{k}"][i].size for k in data["labels"]["kernels"])
        lines.append(f"- d = {d}: |measured / theory - 1|, the median over the curves of each curve's median: "
                     f"{median:.1%}; the worst point is {worst['max |measured / theory - 1|']:.0%} off "
                     f"({worst['network']}, {worst['kernel'].upper()}, N = {worst['N of the max']}); measured above "
                     f"the theory at {above} of {total} points.")
    best = []
    for kernel in data["labels"]["kernels"]:
        for i, d in enumerate(data["labels"]["sphere_dims"]):
            theory = data[f"theory_{kernel}"][i]
            s = len(data["n_trains"]) // 2
            best.append(f"{kernel.upper()} d = {d}, N = {int(data['n_trains'][s])}: "
                        f"{data['labels']['curves'][int(np.argmin(theory[:, s]))]}")
    lines += ["", "Lowest predicted error at the middle N (which network learns this target fastest there): "
              + "; ".join(best) + ".", "",
              "Reading: the theory is derived in a limit of many modes per eigenvalue. On S^2 a degree k has only "
              "2k + 1 harmonics, and in the quick run the measurement leaves the prediction most (up to 2-3x, "
              "above it) where N is near the number of modes being learnt (N = 32-128); on S^9 (degree 2 alone "
              "has 54 modes) measured and predicted curves agree to a few per cent over the whole range."]
    return "\n".join(lines)


def _nngp_vs_ntk(data: dict[str, Any]) -> str:
    """Which kernel's interpolant is smoother, by each measure, per domain; the alpha trend per kernel."""
    from engine.experiments.common import ALPHAS, PUBLISHED_MU

    labels, p = data["labels"], data["labels"]["parameters"]
    curves, depths, domains = labels["curves"], labels["depths"], labels["domains"]
    curvature, rkhs, degree = data["mu_curvature"], data["mu_rkhs"], data["degree"]  # (domains, L, nets, [ntk, nngp])
    spheres = ", ".join(f"S^{d - 1}" for d in p["sphere_dims"]) or "no sphere"
    s2 = len(p["n_trains"]) + p["sphere_dims"].index(3) if 3 in p["sphere_dims"] else None
    s2_degree = "-" if s2 is None else int(degree[s2, 0, 0, 0])
    lines = ["**Question**: the paper measures the NTK interpolant (the trained wide network). Is the NNGP "
             "interpolant (the Bayesian posterior mean of the wide network, or training its last layer alone) "
             "smoother or rougher, by the paper's mu (eq. 22) and by the seed slides' RKHS ratio, and does the "
             "ResNet's smoothing at small alpha hold for both kernels, over depth, on the circle and on spheres?", "",
             f"**Setup**: ReLU MLP and ResNets alpha = {p['alphas']}, depths L = {depths}, kernel interpolation "
             f"with ridge {p['ridge']:g} (relative). Circle: the paper's m = {p['n_trains']} equispaced angles of "
             f"0.5 cos b + sin 4b; mu (eq. 22) on {p['n_grid']} angles (the FFT's frequencies |k| <= "
             f"{p['n_grid'] // 2}); the Gaussian-RKHS ratio in the angle, bandwidth {p['bandwidth']:g}. Spheres "
             f"({spheres}): n = {p['n_points']} points uniform at random (seed {p['seed']}) of f*(x) = 0.5 x_1 + "
             f"P_{p['target_degree']}(x_2) + {p['kink']:g} |x_3| (P_k the Gegenbauer polynomial with P_k(1) = 1, a "
             "zonal harmonic of degree k; |x_3| has a kink, so f* itself has no finite curvature). Curvature mu = "
             "||Delta f|| / ||f|| (Laplace-Beltrami; eq. 22 on the circle): on S^2 from the harmonics of a Gauss "
             f"product grid of {p['sphere_grid']} points, which truncates at degree {s2_degree} (higher degrees "
             "alias into it; for the ReLU NTK the sum grows like the log of that degree); on S^d, d > 2, from the "
             "interpolant's exact harmonic energies, a sum truncated at the degree in the table's column (511 at "
             "most, earlier where the Funk-Hecke eigenvalues' errors would move it by 1e-6). RKHS ratio on the "
             f"spheres: the heat kernel exp(-t k (k + d - 2)), t = {p['sphere_bandwidth']:g}^2 / 2, cut where the "
             "weight falls below 1e-12. The RKHS dimensions (Fourier modes / harmonics kept) per domain: "
             + ", ".join(f"{name}: {h} for {n} samples" for name, h, n in
                         zip(domains, labels["rkhs_harmonics"], labels["samples"], strict=True)) + ".", ""]
    for i, name in enumerate(domains):
        by_mu = curvature[i, ..., 1] < curvature[i, ..., 0]  # NNGP smoother by eq. 22
        by_rkhs = rkhs[i, ..., 1] > rkhs[i, ..., 0]
        cells = by_mu.size
        agree = int(np.sum(by_mu == by_rkhs))
        line = (f"- {name}: NNGP smoother than NTK by mu in {int(by_mu.sum())} of {cells} (L, network) cells "
                f"(median mu NNGP / NTK {np.median(curvature[i, ..., 1] / curvature[i, ..., 0]):.3g}), by the RKHS "
                f"ratio in {int(by_rkhs.sum())} of {cells} (median ratio NNGP / NTK "
                f"{np.median(rkhs[i, ..., 1] / rkhs[i, ..., 0]):.3g}); the two measures agree on the smoother "
                f"kernel in {agree} of {cells}.")
        if len(curves) > 1:
            trend = []
            for k, kernel in enumerate(labels["kernels"]):
                pairs = zip(curvature[i, :, 0, k], curvature[i, :, -1, k], strict=True)
                trend.append(f"{kernel.upper()} mu " + ", ".join(f"{a:.4g} -> {b:.4g}" for a, b in pairs))
            line += (f" MLP -> {curves[-1]} at L = {depths}: " + "; ".join(trend) + ".")
        lines.append(line)
    # the NTK on the circle at the paper's settings is the paper's table
    if p["ridge"] == 1e-10 and p["n_grid"] == 4096:
        diffs = []
        for i, m in enumerate(p["n_trains"]):
            for j, depth in enumerate(depths):
                for c, label in enumerate(curves):
                    alpha = None if label == "MLP" else float(label.split("=")[1])
                    published = PUBLISHED_MU.get((depth, m))
                    if published is not None and (alpha is None or alpha in ALPHAS):
                        theirs = published[0 if alpha is None else 1 + ALPHAS.index(alpha)]
                        ours = float(f"{curvature[i, j, c, 0]:#.{PRINTED_DIGITS}g}")
                        diffs.append((ours == theirs, f"L = {depth}, m = {m}, {label}: ours "
                                      f"{curvature[i, j, c, 0]:.6g}, published {theirs}"))
        if diffs:
            off = [where for same, where in diffs if not same]
            lines += ["", f"The NTK on the circle is the paper's mu table: {len(diffs) - len(off)} of {len(diffs)} "
                      "published values reproduced to the printed digits"
                      + (f"; differing: {'; '.join(off)} (the interpolation experiment discusses them)." if off
                         else ".")]
    lines += ["", "Reading (the quick scale's numbers): on the circle the NNGP interpolant is far smoother than the "
              "NTK's by both measures (with 6 samples the NNGP's mu is at most 1.16, nearly a single harmonic, for "
              "every ResNet, where the NTK needs alpha <= 0.1; with 10 it is 14.2-16.7, about the target's own "
              "sqrt(205) = 14.32, against the NTK's 103-422), and the MLP-to-ResNet ordering is the same for both "
              "kernels. On S^2 the NNGP is smoother by both measures, by mu only slightly (0.2-32%): its mu hardly "
              "changes with the network (12.8-12.9) while the NTK's falls from the MLP to alpha = 0.1. On S^9, with "
              "256 samples against the 714 harmonics of degree 4, the measures part: the RKHS ratio still calls the "
              "NNGP smoother, but its mu is larger than the NTK's in every cell, and mu grows from the MLP to small "
              "alpha. There the interpolants hold almost all their energy in degrees 0-2 (beyond degree 6: 1e-5 of "
              "it for the NTK, 4e-6 for the NNGP, MLP L = 5), so mu reports how much of the target's degree-2 and -4 "
              "parts each interpolant learnt (the NNGP more), not roughness; the RKHS norm of f, by contrast, comes "
              "from that tail (degrees above half the cut-off hold 96-99% of ||f||_H^2 for the NTK and 44-72% for the "
              "NNGP on S^9, over 99.99% on S^2), where the NTK holds more. Those energies come from separate engine "
              "calls (docs/reproduction.md gives them)."]
    return "\n".join(lines)


SMOOTHER_IS_LARGER = {"rkhs"}  # every other measure is larger for rougher functions


SIGNIFICANCE = 0.05


def _verdict(row: dict[str, Any]) -> str:
    """How one Spearman row reads: smoothness predicts lower error, the opposite, or no evidence either way.
    A direction needs both the permutation test across networks (p < SIGNIFICANCE) and the bootstrap
    interval over splits and seeds clear of 0 on that side."""
    if row["rho"] is None or row["low"] is None:
        return "undefined"
    if row["p_value"] >= SIGNIFICANCE:
        return f"no evidence (p = {row['p_value']:.2g})"
    sign = -1 if row["measure"] in SMOOTHER_IS_LARGER else 1
    low, high = sorted((sign * row["low"], sign * row["high"]))  # rho > 0 here: rougher, higher error
    if low > 0:
        return "smoother -> lower error"
    if high < 0:
        return "smoother -> HIGHER error"
    return "no evidence (interval holds 0)"


def _smoothness_generalization(data: dict[str, Any]) -> str:
    """The rank correlations read plainly, per task, predictor and measure, all networks and per family."""
    p, labels = data["labels"]["parameters"], data["labels"]
    lines = ["**Question**: across architectures (MLP, ResNets over alpha and depth, CNN and conv-ResNets), does "
             "a smoother predictor generalise better? Smoothness as the paper's curvature mu, the heat-kernel RKHS "
             "ratio, max ||df/dx|| over test points, the paper's Jacobian bound B, and (trained digit classifiers) "
             "the spectrally-normalised margin bound of Bartlett, Foster & Telgarsky (2017).", "",
             f"**Setup**: scikit-learn's 8x8 digits (all ten classes, one-hot regression; {p['n_train']} training "
             f"and {p['n_test']} test images per split, {p['splits']} stratified splits; unit-norm vectors on S^63, "
             f"and the first {p['conv_n_train']} / {p['conv_n_test']} of each split as 8x8x1 images for the conv "
             f"kernels, {p['conv_readout']} readout); targets of degrees {p['target_degrees']} plus noise "
             f"{p['noise']:g} on S^{p['sphere_dim'] - 1} ({p['sphere_n_train']} / {p['sphere_n_test']} points). "
             f"Kernel regression with ridge {p['ridge']:g} x mean diagonal; trained networks: one scalar network "
             f"per class, width {p['width']}, {p['n_init']} initialisation(s), {p['steps']} GD steps at "
             f"{p['lr_fraction']:g} x 2 / (lambda_min + lambda_max), depths {p['net_depths']}, alphas "
             f"{p['net_alphas']}. max ||df/dx|| over the first {p['gradient_points']} test points "
             f"({p['conv_gradient_points']} for the conv kernels), by autodiff. mu and the RKHS ratio (bandwidth "
             f"{p['bandwidth']:g}, degrees <= {p['k_max']}) over the sphere of the inputs. Spearman's rho between "
             "the networks' mean measure and mean test error, 95% bootstrap interval over the "
             f"{p['splits']} splits (x initialisations), {p['bootstrap']} draws. A row reads 'smoother -> lower "
             "error' when its permutation test across the networks gives p < 0.05 and its bootstrap interval "
             "excludes 0 on that side (rho > 0 for mu, ||df/dx||, B and the margin bound, < 0 for the RKHS ratio, "
             "where larger is smoother); 'HIGHER' the same on the other side. The interval holds only the "
             "splits' variation: with few splits it is narrow (2 splits: three distinct resamples). Networks "
             "that are the same predictor (the ResNet at alpha = 0, a linear kernel, at every depth) count once.",
             ""]
    rows = data["tables"]["spearman"]
    for row in rows:
        if row["family"] == "all":
            same = [r for r in rows if (r["task"], r["predictor"], r["measure"], r["against"])
                    == (row["task"], row["predictor"], row["measure"], row["against"]) and r["family"] != "all"]
            within = "; ".join(f"{r['family']}: " + ("-" if r["rho"] is None else f"{r['rho']:.2f}")
                               + f" ({_verdict(r)})" for r in same)
            interval = "-" if row["low"] is None else f"[{row['low']:.2f}, {row['high']:.2f}]"
            rho = "-" if row["rho"] is None else f"{row['rho']:.2f}"
            lines.append(f"- {row['task']}, {labels['predictors'][row['predictor']]}, {row['measure']} vs "
                         f"{row['against']}: rho = {rho} {interval} over {row['architectures']} distinct networks: "
                         f"**{_verdict(row)}**. Within families: {within or '-'}.")
    tally: dict[str, int] = {}
    for row in rows:
        if row["family"] == "all" and row["against"] == "test error":
            verdict = _verdict(row).split(" (p =")[0]
            tally[verdict] = tally.get(verdict, 0) + 1
    lines += ["", "In all (every network of a task and predictor, against the test error): "
              + ", ".join(f"{v}: {k}" for k, v in sorted(tally.items())) + "."]
    bound = data["tables"]["margin_bound"]
    if bound:
        gaps = [r["measured gap"] for r in bound]
        lines += ["", f"The margin bound (BFT 2017, our constants: docs/reproduction.md) is vacuous for "
                  f"{sum(r['vacuous (bound >= 1)'] for r in bound)} of {len(bound)} trained networks: it bounds the "
                  f"test error by {min(r['bound on the test error'] for r in bound):.3g} at best, where the measured "
                  f"gaps are {min(gaps):.3f} to {max(gaps):.3f}."]
    return "\n".join(lines)


def _claims(name: str, data: dict[str, Any]) -> str:
    """The paper's qualitative claim for this experiment, checked on the data."""
    tables = data["tables"]
    if name == "spiky-or-stable":
        return _spiky_or_stable(data)
    if name == "conv-spectra":
        return _conv_spectra(data)
    if name == "learning-curves":
        return _learning_curves(data)
    if name == "nngp-vs-ntk":
        return _nngp_vs_ntk(data)
    if name == "smoothness-generalization":
        return _smoothness_generalization(data)
    if name == "kernel-shapes":
        return ("The profile table holds the NTK of the ResNet alpha = 0.1, L = 5, unnormalised, beside the "
                "published values.")
    if name == "interpolation":
        return _mu_comparison(data)
    if name == "digits":
        classes = data["labels"]["parameters"]["classes"]
        rows = tables["accuracy"]
        better = sum(r["ResNet alpha=0.1 mean"] >= r["MLP mean"] for r in rows if "ResNet alpha=0.1 mean" in r)
        lines = [f"The data set is scikit-learn's 8x8 handwritten digits (classes {classes}, at least "
                 f"{data['labels']['test_size']} test images), **not MNIST**: this two-class task is much easier at "
                 "8x8, so the absolute numbers are not comparable with the paper's Table 1 (below, for reference). "
                 f"The paper's claim (ResNet alpha = 0.1 at least as accurate as the MLP) holds in {better} of "
                 f"{len(rows)} (N, L) cells here.", "", "Published (MNIST, Table 1):", "",
                 markdown_table(tables["published_mnist"])]
        return "\n".join(lines)
    if name == "beyond-ntk":
        verdicts = [_smoother([r for r in tables["mu"] if r["optimizer"] == optimizer and r["m"] == m],
                              f"{optimizer}, m = {m}")
                    for optimizer in data["labels"]["optimizers"] for m in data["labels"]["n_trains"]]
        diverged = [f"{r['optimizer']} {r['network']} (m = {r['m']})" for r in tables["mu"] if r["mu mean"] is None]
        init = data["labels"].get("parametrization", "standard")
        text = ("Paper's claim: ResNets with alpha = 0.1 stay smoother than the MLP outside the NTK regime. "
                + "; ".join(verdicts) + ".")
        if diverged:
            text += (f" Diverged at the paper's step size with the {init} initialisation: " + ", ".join(diverged)
                     + " (the table's note gives the step and the network's bound; the paper does not report this).")
        return text
    if name in ("lowest-loss", "scalar-angle"):
        labels = data["labels"]
        where = "the scalar angle as the input" if labels["input"] == "angle" else "inputs on the circle"
        text = ("Paper's claim (Figs. 4-5): the ResNet with alpha = 0.1 is visibly smoother than the MLP. "
                + _smoother(tables["mu"], f"{where}, {labels['parametrization']} initialisation, mu (eq. 22)")
                + "; " + _smoother(tables["mu"], "without the wrap-around (mu interior)", "mu interior mean") + ".")
        zero = 0.5 * float(np.sum(np.square(data["train_values"])))
        losses = ", ".join(f"{r['network']} {r['lowest loss (mean)']:.3g}" for r in tables["mu"])
        text += (f" Lowest training loss, mean over the networks: {losses} (the zero function's is {zero:.3g}); a "
                 "network far from fitting its samples is smooth for that reason, not by its architecture.")
        if labels["input"] == "angle":
            text += (" With the angle itself as the input the function need not be periodic, and mu (eq. 22) counts "
                     "the jump between b = pi and -pi as curvature, so eq. 22 is large for every network here; "
                     "mu interior leaves the jump out.")
        return text
    if name == "bounds":
        return ("Paper's claim: B_ResNet <= B_MLP exactly when alpha is at most the threshold "
                "(3^(1 - 1/L) - 1) / 9 (0.157 at L = 5, 2/9 as L grows); the measured Lipschitz constants are far "
                "below both bounds, which are loose upper bounds.")
    if name == "finite-vs-infinite":
        return ("Paper's claim: at width 2000 the trained networks follow the NTK regression curve. "
                "The table gives the ensemble mean's distance to the NTK regression mean at the same training time "
                "and the NTK's relative drift during training; at the quick scale's width the agreement is looser.")
    return ""


def reproduce(names: list[str] | None = None, out: Path = Path("reproduction"), scale: str = "quick",
              overrides: dict[str, dict[str, Any]] | None = None, progress: bool = True,
              jobs: int = 2) -> tuple[Path, list[str]]:
    """Run the experiments (all by default) and write out/<name>/... and out/report.md.
    An experiment that fails is reported there and the others still run. jobs: experiments
    run at once, each in its own (spawned) process, so a script that calls this with jobs > 1
    needs the `if __name__ == "__main__":` guard; 1: one after another in this process. The
    compilation cache this process uses, if any, is theirs too. Returns the report's path and
    the names of the experiments that failed."""
    names = names or list(EXPERIMENTS)
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; choose from {sorted(EXPERIMENTS)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    console = Console(stderr=True, quiet=not progress)
    bars = progress_bars(console)
    tasks = {name: bars.add_task(name, total=1.0, message="waiting", start=False) for name in names}
    with bars:
        if jobs == 1 or len(names) == 1:
            results = {name: _run_one(name, scale, (overrides or {}).get(name), out,
                                      _bar_updates(bars, tasks[name])) for name in names}
        else:
            results = _run_concurrently(names, scale, overrides or {}, out, jobs, bars, tasks)
    rows = [(name, results[name][1], results[name][2]) for name in names]
    failed = [name for name, result, _ in rows if result != "ok"]
    console.print(summary_table(rows))
    total = time.monotonic() - started
    header = (f"# reskernel: the paper reproduced\n\nTirer, Bruna & Giryes, \"Kernel-Based Smoothness Analysis of "
              f"Residual Networks\" (MSML 2021). Scale: **{scale}** (`quick` fits a 2-core CPU; the kernel-only "
              f"experiments use the paper's settings at both scales; `--scale paper` runs the finite networks at the "
              f"paper's widths and initialisations). {len(names)} experiments in {total:.0f} s"
              + (f"; failed: {', '.join(failed)}" if failed else "") + ".\n")
    (out / "report.md").write_text(header + "\n" + "\n".join(results[name][0] for name in names))
    return out / "report.md", failed


# What a running experiment tells its progress bar: ("start",), ("update", fraction, message), ("end", message).
Update = Callable[..., None]


def _bar_updates(bars: Progress, task: TaskID) -> Update:
    """The bar of one experiment, driven by the updates `_run_one` sends."""
    def update(kind: str, *args: Any) -> None:
        if kind == "start":
            bars.start_task(task)
        elif kind == "update":
            bars.update(task, completed=args[0], message=args[1][:60])
        else:
            if args[0] == "done":
                bars.update(task, completed=1.0, message=args[0])
            else:
                bars.update(task, message=args[0])
            bars.stop_task(task)
    return update


def _longest_first(names: list[str], scale: str, overrides: dict[str, dict[str, Any]]) -> list[str]:
    """The experiments by their estimated cost, largest first, so that the last to start are short."""
    def estimate(name: str) -> float:
        try:
            cost = EXPERIMENTS[name].cost(EXPERIMENTS[name].parameters(scale, overrides.get(name)))
        except ValueError:  # reported when it runs
            return 0.0
        return cost["training_weight_steps"] + 10 * cost["kernel_entry_layers"]
    return sorted(names, key=estimate, reverse=True)


def _run_concurrently(names: list[str], scale: str, overrides: dict[str, dict[str, Any]], out: Path, jobs: int,
                      bars: Progress, tasks: dict[str, TaskID]) -> dict[str, tuple[str, str, float]]:
    """Each experiment in one of `jobs` worker processes (spawned: JAX does not survive a fork),
    the largest first; their progress comes back through a queue."""
    import jax

    context = multiprocessing.get_context("spawn")
    updates = context.Queue()
    # jax sets its options as attributes at run time, which the type checker cannot see
    cache = jax.config.jax_compilation_cache_dir  # type: ignore[attr-defined]
    results: dict[str, tuple[str, str, float]] = {}
    listener = threading.Thread(target=_relay, args=(updates, {n: _bar_updates(bars, t) for n, t in tasks.items()}),
                                daemon=True)
    listener.start()
    try:
        with ProcessPoolExecutor(min(jobs, len(names)), mp_context=context, initializer=_start_worker,
                                 initargs=(updates, cache)) as pool:
            futures = {pool.submit(_run_in_worker, name, scale, overrides.get(name), out): name
                       for name in _longest_first(names, scale, overrides)}
            for future in as_completed(futures):
                name = futures[future]
                try:
                    results[name] = future.result()
                except Exception as exc:  # the worker process itself died (e.g. out of memory)
                    results[name] = (f"## {EXPERIMENTS[name].title}\n\n`{name}`, {scale} scale: **failed**: "
                                     f"{type(exc).__name__}: {exc}\n", f"failed: {type(exc).__name__}: {exc}", 0.0)
    finally:
        updates.put(None)
        listener.join()
    return results


def _relay(updates: Queue[Any], bars: dict[str, Update]) -> None:
    """Forward (name, kind, *args) from the workers to the bars until None."""
    while (item := updates.get()) is not None:
        name, *update = item
        bars[name](*update)


_UPDATES: Queue[Any] | None = None  # in a worker process: the queue to the parent's bars


def _start_worker(updates: Queue[Any], cache: str | None) -> None:
    global _UPDATES
    _UPDATES = updates
    if cache:
        from engine.compilation import enable_compilation_cache

        enable_compilation_cache(cache)


def _run_in_worker(name: str, scale: str, overrides: dict[str, Any] | None, out: Path) -> tuple[str, str, float]:
    updates = _UPDATES
    assert updates is not None  # set by _start_worker, this process's initializer
    return _run_one(name, scale, overrides, out, lambda *update: updates.put((name, *update)))


def _run_one(name: str, scale: str, overrides: dict[str, Any] | None, out: Path,
             update: Update) -> tuple[str, str, float]:
    """Run and write one experiment; its report section, how it ended ("ok" or the error), its seconds."""
    experiment = EXPERIMENTS[name]
    start = time.monotonic()
    update("start")
    try:
        data = run(name, scale, overrides, progress=lambda fraction, message: update("update", fraction, message))
        write_experiment(name, data, out / name)
    except Exception as exc:  # one experiment's failure is reported, the rest still run
        update("end", f"[red]failed: {type(exc).__name__}[/red]")
        return (f"## {experiment.title}\n\n`{name}`, {scale} scale: **failed**: {type(exc).__name__}: {exc}\n",
                f"failed: {type(exc).__name__}: {exc}", time.monotonic() - start)
    seconds = time.monotonic() - start
    update("end", "done")
    tables = "\n\n".join(f"**{table}**\n\n{markdown_table(rows)}" for table, rows in data["tables"].items()
                         if not table.startswith("published"))
    section = (f"## {experiment.title}\n\n`{name}`, {scale} scale, {seconds:.0f} s. {experiment.description}\n\n"
               f"Parameters: `{json.dumps(data['labels']['parameters'])}`\n\n![{name}]({name}/figure.png)\n\n"
               f"{tables}\n\n{_claims(name, data)}\n\n"
               f"Data: [{name}/data.json]({name}/data.json) and one CSV per table.\n")
    return section, "ok", seconds

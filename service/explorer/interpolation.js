// View 3: interpolants of a few samples, their mu, and mu against alpha or depth (Figs. 2, 6).

import { run } from "./api.js";
import { label, spec } from "./architectures.js";
import { ANGLE_AXIS, busy, color, element, latest, paperTarget, plot } from "./ui.js";

const N_GRID = 4096;  // the paper's grid for mu
const SWEEP_ALPHAS = [0, 0.05, 0.1, 0.2, 0.3, 0.5, 1];
const SWEEP_DEPTHS = [1, 2, 3, 5, 10, 15, 20];
const ONE_TWO_FIVE = [-2, -1, 0, 1, 2, 3, 4].flatMap((e) => [1, 2, 5].map((m) => Number((m * 10 ** e).toPrecision(1))));  // log-axis ticks

/** The user's own values as typed: numbers where they parse, the text otherwise (the API names it). */
export function ownValues(text) {
  return text.split(/[,\s]+/).filter(Boolean).map((t) => (Number.isFinite(Number(t)) ? Number(t) : t));
}

/** The smoothness request of the interpolation view for `architectures`. */
function smoothnessRequest(state, architectures) {
  const body = { architectures: architectures.map(spec), n_train: state.n, n_grid: N_GRID };
  if (state.target === "own") body.targets = ownValues(state.values);
  return body;
}

/** The architectures of the second plot, with the name of the curve each belongs to. */
function sweep(state) {
  if (state.sweep === "none") return [];
  if (state.sweep === "depth") {
    return state.archs.slice(0, 8).flatMap((arch) => SWEEP_DEPTHS.map((depth) => ({ curve: label({ ...arch, depth: "L" }).replace(" L=L", ""), x: depth, arch: { ...arch, depth } })));
  }
  const bases = new Map();
  for (const arch of state.archs) {
    const base = { ...arch, alpha: 0 };
    if (arch.kind === "resnet") bases.set(JSON.stringify(base), base);
  }
  const mlps = state.archs.filter((a) => a.kind === "mlp");
  return [...bases.values()].slice(0, 6).flatMap((base) =>
    SWEEP_ALPHAS.map((alpha) => ({ curve: label(base).replace("α=0 ", ""), x: alpha, arch: { ...base, alpha } })))
    .concat(mlps.slice(0, 2).flatMap((arch) => [0, 1].map((x) => ({ curve: label(arch), x, arch }))));
}

export function interpolationView(view, editor) {
  const figure = view.querySelector("#plot-interpolation");
  const second = view.querySelector("#plot-sweep");
  const table = view.querySelector("#mu-table");
  return latest(view, editor.locator(view), async (state, signal, current) => {
    const result = await run("smoothness", smoothnessRequest(state, state.archs), { signal });
    if (!current()) return;
    const traces = result.results.map((r, i) => ({
      x: result.angles, y: result.interpolants[i], mode: "lines",
      name: `${label(state.archs[i])} (μ = ${r.mu.toPrecision(4)})`, meta: { mu: r.mu, architecture: i }, line: { color: color(i) },
    }));
    if (state.target === "paper") {
      traces.push({ x: result.angles.filter((_, k) => k % 16 === 0), y: result.angles.filter((_, k) => k % 16 === 0).map(paperTarget),
        mode: "lines", name: "target 0.5 cos b + sin 4b", line: { dash: "dot", color: "#888" } });
    }
    traces.push({ x: result.train_angles, y: result.train_values, mode: "markers", name: `${state.n} samples`,
      marker: { size: 9, color: "black" } });
    await plot(figure, traces, { title: { text: "Interpolants and their smoothness μ" }, xaxis: ANGLE_AXIS, yaxis: { title: { text: "f(b)" } } });
    table.replaceChildren(element("caption", {}, "μ of each interpolant (eq. 22)"),
      element("tr", {}, element("th", { scope: "col" }, "architecture"), element("th", { scope: "col" }, "μ")),
      ...result.results.map((r, i) => element("tr", {}, element("td", {}, label(state.archs[i])), element("td", {}, r.mu.toPrecision(6)))));

    const points = sweep(state);
    second.closest("figure").hidden = !points.length;
    if (!points.length) return;
    busy(view, `Computing μ against ${state.sweep} (${points.length} architectures)…`, [second]);
    const swept = await run("smoothness", smoothnessRequest(state, points.map((p) => p.arch)), {
      signal, onProgress: (status) => current() && busy(view, `Computing μ against ${state.sweep}: ${status.message}`, [second]),
    });
    if (!current()) return;
    const curves = new Map();
    points.forEach((p, k) => {
      if (!curves.has(p.curve)) curves.set(p.curve, { x: [], y: [], mode: "lines+markers", name: p.curve,
        line: p.arch.kind === "mlp" ? { dash: "dash" } : {} });
      curves.get(p.curve).x.push(p.x);
      curves.get(p.curve).y.push(swept.results[k].mu);
    });
    await plot(second, [...curves.values()], {
      title: { text: `μ against ${state.sweep === "alpha" ? "α (MLP: flat line)" : "depth L"}` },
      xaxis: { title: { text: state.sweep === "alpha" ? "α" : "depth L" } }, yaxis: { title: { text: "μ" }, type: "log", tickvals: ONE_TWO_FIVE, ticktext: ONE_TWO_FIVE.map(String) },
    });
  }, [editor.list]);
}

// View 4: Fourier magnitudes (Fig. 8), eigenvalues on the sphere S^(d-1) and their decay, Gram
// condition numbers against depth, Jacobian bounds.

import { run } from "./api.js";
import { label, spec } from "./architectures.js";
import { drawSphereSpectra, sphereSpectra } from "./decay.js";
import { profileRequest } from "./shapes.js";
import { busy, color, forArch, latest, plot } from "./ui.js";

const CONDITION_DEPTHS = [1, 2, 5, 10, 20];
const BOUND_DEPTHS = [1, 2, 3, 5, 10, 20, 30];
const BOUND_ALPHAS = [0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1];
// 16 equispaced points on the circle, as in the spectra experiment.
const CIRCLE = Array.from({ length: 16 }, (_, k) => [Math.cos((2 * Math.PI * k) / 16), Math.sin((2 * Math.PI * k) / 16)]);

export function spectraView(view, editor) {
  const [magnitudes, sphere, condition, byDepth, byAlpha] = ["magnitudes", "sphere", "condition", "bounds-depth", "bounds-alpha"]
    .map((name) => view.querySelector(`#plot-${name}`));
  const decayTable = view.querySelector("#decay-table");
  return latest(view, editor.locator(view), async (state, signal, current) => {
    const archs = state.archs;
    let done = 0;
    const total = archs.length * (2 + CONDITION_DEPTHS.length + BOUND_DEPTHS.length) + BOUND_ALPHAS.length;
    const counted = (i, promise) => forArch(i, promise).then((result) => {
      done += 1;
      if (current()) busy(view, `Computing: ${done} of ${total} jobs`);
      return result;
    });
    const bounds = (arch, i) => counted(i, run("bounds", { architecture: spec(arch), width: state.bwidth, input_dim: state.dim }, { signal }));
    const resnet = archs.findIndex((a) => a.kind === "resnet");

    const profiles = Promise.all(archs.map((arch, i) => counted(i, run("spectrum", profileRequest(arch, "ntk", true), { signal }))));
    // A bad d or k_max (the API's 422 beside its control) leaves the other plots to be drawn: its
    // failure is kept, and thrown once they are.
    let sphereFailure = null;
    const onSphere = sphereSpectra(state, signal, counted).then(async (answers) => {
      if (current()) await drawSphereSpectra(sphere, decayTable, archs, answers, state);
    }, (error) => {
      sphereFailure = error;
    });
    const conditions = Promise.all(archs.map((arch, i) => Promise.all(CONDITION_DEPTHS.map((depth) =>
      counted(i, run("spectrum", { architecture: spec({ ...arch, depth }), n_grid: 8, x: CIRCLE }, { signal }))))));
    const depths = Promise.all(archs.map((arch, i) => Promise.all(BOUND_DEPTHS.map((depth) => bounds({ ...arch, depth }, i)))));
    const alphas = resnet < 0 ? Promise.resolve([]) : Promise.all(BOUND_ALPHAS.map((alpha) => bounds({ ...archs[resnet], alpha }, resnet)));

    const spectra = await profiles;
    if (!current()) return;
    await plot(magnitudes, spectra.map((s, i) => ({ x: s.frequencies.slice(0, 64), y: s.magnitudes.slice(0, 64), mode: "lines", name: label(archs[i]), line: { color: color(i) } })), {
      title: { text: "Fourier magnitudes of the NTK profile" }, xaxis: { title: { text: "frequency k" } },
      yaxis: { title: { text: "|c_k|" }, type: "log", exponentformat: "power" },
    });
    const grams = await conditions;
    if (!current()) return;
    await plot(condition, grams.map((rows, i) => ({ x: CONDITION_DEPTHS, y: rows.map((r) => r.condition), mode: "lines+markers", name: label(archs[i]), line: { color: color(i) } })), {
      title: { text: "Condition number of the 16-point NTK Gram matrix" }, xaxis: { title: { text: "depth L" } },
      yaxis: { title: { text: "λmax / λmin" }, type: "log", exponentformat: "power" },
    });
    const byDepths = await depths;
    if (!current()) return;
    await plot(byDepth, byDepths.map((rows, i) => ({ x: BOUND_DEPTHS, y: rows.map((r) => r.bound), mode: "lines+markers", name: label(archs[i]), line: { color: color(i) } })), {
      title: { text: `Bound on ||df/dx|| (width ${state.bwidth}, d = ${state.dim})` }, xaxis: { title: { text: "depth L" } },
      yaxis: { title: { text: "bound" }, type: "log", exponentformat: "power" },
    });
    await onSphere;
    const byAlphas = await alphas;
    if (!current()) return;
    if (byAlphas.length) await drawAlphas(byAlpha, archs, resnet, byAlphas);
    if (sphereFailure) throw sphereFailure;
  }, [editor.list]);
}

/** The bounds against alpha of the ResNet `archs[resnet]`, beside the MLP's, with the alpha threshold. */
async function drawAlphas(byAlpha, archs, resnet, byAlphas) {
  const threshold = byAlphas[0].alpha_threshold;
  const base = archs[resnet];
  await plot(byAlpha, [
    { x: BOUND_ALPHAS, y: byAlphas.map((r) => r.bound_resnet), mode: "lines+markers", name: `B_ResNet, L=${base.depth}`, line: { color: color(resnet) } },
    { x: [0, 1], y: [byAlphas[0].bound_mlp, byAlphas[0].bound_mlp], mode: "lines", name: `B_MLP, L=${base.depth}`, line: { dash: "dash", color: "#555" } },
  ], {
    title: { text: `Bounds against α; threshold α* = ${threshold === null ? "none" : threshold.toPrecision(3)}` },
    xaxis: { title: { text: "α" } }, yaxis: { title: { text: "bound" }, type: "log", exponentformat: "power" },
    shapes: threshold === null ? [] : [{ type: "line", x0: threshold, x1: threshold, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#c00" } }],
  });
}

// View: interpolation on the sphere S^2, beside the circle's. Each architecture's NTK interpolant of
// a few samples on the unit sphere, drawn on the sphere (Plotly's 3-D mesh, coloured by its value),
// the samples marked, and its smoothness mu (issue 22).

import { run } from "./api.js";
import { label, spec } from "./architectures.js";
import { ownValues } from "./interpolation.js";
import { debounce, element, latest, plot, plotText } from "./ui.js";

const SPHERE_WIDTH = 300;  // px: the narrowest a sphere is drawn (a row holds at most 3)
const ROW_HEIGHT = 380;  // px

/** n points spread evenly on the unit sphere (the Fibonacci lattice): (n, 3). */
export function fibonacciPoints(n) {
  const golden = Math.PI * (3 - Math.sqrt(5));
  return Array.from({ length: n }, (_, i) => {
    const z = 1 - (2 * i + 1) / n;
    const r = Math.sqrt(Math.max(0, 1 - z * z));
    return [r * Math.cos(golden * i), r * Math.sin(golden * i), z];
  });
}

/** The paper's target carried to the sphere: 0.5 x + Im (x + i y)^4, which is 0.5 cos b + sin 4b on
 * the equator (a sum of spherical harmonics of degrees 1 and 4). */
export const sphereTarget = ([x, y]) => 0.5 * x + 4 * x * y * (x * x - y * y);

/** The one place this view meets the API: POST /v1/smoothness with points on S^2 and their targets.
 * Returns {grid: (M, 3), interpolants: (A, M), trainPoints: (n, 3), trainValues: (n), mu: (A)}. */
export async function sphereSmoothness(state, signal) {
  const points = fibonacciPoints(state.sn);
  const targets = state.starget === "own" ? ownValues(state.svalues) : points.map(sphereTarget);
  const body = { architectures: state.archs.map(spec), points, targets, n_grid: state.sgrid, measure: state.smeasure };
  const answer = await run("smoothness", body, { signal });
  return {
    grid: answer.grid_points, interpolants: answer.interpolants, trainPoints: answer.train_points,
    trainValues: answer.train_values, mu: answer.results.map((r) => r.mu),
  };
}

const column = (rows, j) => rows.map((row) => row[j]);

/** The scene of sphere `i` of `count`: its place in a grid of `columns`. */
function scene(i, count, columns) {
  const rows = Math.ceil(count / columns);
  const [r, c] = [Math.floor(i / columns), i % columns];
  const axis = { visible: false, range: [-1.1, 1.1] };
  return {
    domain: { x: [c / columns, (c + 1) / columns], y: [1 - (r + 1) / rows, 1 - r / rows - 0.06 / rows] },
    xaxis: axis, yaxis: axis, zaxis: axis, aspectmode: "cube", camera: { eye: { x: 1.25, y: 1.25, z: 0.8 } },
  };
}

/** How many spheres a row of `figure` holds (at most 3, at least 1). */
function columnsFor(figure, count) {
  return Math.max(1, Math.min(3, count, Math.floor(figure.clientWidth / SPHERE_WIDTH)));
}

/** Draw `result` (sphereSmoothness's) for `archs`: one sphere per architecture, one colour scale.
 * Returns the number of columns used. */
async function draw(figure, table, archs, result, measure) {
  const [x, y, z] = [0, 1, 2].map((j) => column(result.grid, j));
  const largest = (values) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const limit = Math.max(largest(result.trainValues), ...result.interpolants.map(largest)) || 1;  // a scale symmetric about 0
  const lifted = result.trainPoints.map((p) => p.map((v) => 1.03 * v));  // just off the surface
  const columns = columnsFor(figure, archs.length);
  const traces = [];
  const layout = { coloraxis: { colorscale: "RdBu", cmin: -limit, cmax: limit, colorbar: { title: { text: "f" } } },
    annotations: [], showlegend: true, margin: { l: 0, r: 0, t: 20, b: 0 } };
  archs.forEach((arch, i) => {
    const name = i ? `scene${i + 1}` : "scene";
    layout[name] = scene(i, archs.length, columns);
    const title = `${label(arch)}: μ = ${result.mu[i].toPrecision(4)}`;
    layout.annotations.push({ text: plotText(title), showarrow: false, xref: "paper", yref: "paper", xanchor: "center", yanchor: "bottom",
      x: (layout[name].domain.x[0] + layout[name].domain.x[1]) / 2, y: layout[name].domain.y[1] });
    traces.push({ type: "mesh3d", scene: name, x, y, z, intensity: result.interpolants[i], coloraxis: "coloraxis", alphahull: 0,
      name: title, showlegend: false, flatshading: false, meta: { architecture: i, mu: result.mu[i] },
      hovertemplate: "f = %{intensity:.4g}<extra></extra>" });
    traces.push({ type: "scatter3d", scene: name, mode: "markers", x: column(lifted, 0), y: column(lifted, 1), z: column(lifted, 2),
      name: `${result.trainValues.length} samples`, showlegend: i === 0, legendgroup: "samples",
      marker: { size: 4, color: result.trainValues, coloraxis: "coloraxis", line: { color: "black", width: 1 } },
      meta: { architecture: i, samples: true }, hovertemplate: "sample: %{marker.color:.4g}<extra></extra>" });
  });
  figure.style.height = `${Math.ceil(archs.length / columns) * ROW_HEIGHT}px`;
  await plot(figure, traces, { title: { text: "Interpolants on the sphere S² (colour: the value; dots: the samples)" }, ...layout });
  const what = measure === "rkhs" ? "the RKHS ratio, heat kernel of the sphere" : "eq. 22 by the Laplace-Beltrami operator";
  table.replaceChildren(element("caption", {}, `μ of each interpolant on S² (${what})`),
    element("tr", {}, element("th", { scope: "col" }, "architecture"), element("th", { scope: "col" }, "μ")),
    ...result.mu.map((mu, i) => element("tr", {}, element("td", {}, label(archs[i])), element("td", {}, mu.toPrecision(6)))));
  return columns;
}

export function sphereView(view, editor) {
  const figure = view.querySelector("#plot-s2");
  const table = view.querySelector("#s2-table");
  let shown = null;  // what is drawn, and in how many columns: drawn again when the page's width changes them
  window.addEventListener("resize", debounce(() => {
    if (shown && !view.hidden && columnsFor(figure, shown.archs.length) !== shown.columns) {
      draw(figure, table, shown.archs, shown.result, shown.measure).then((columns) => { shown.columns = columns; });
    }
  }, 200));
  const slots = { points: "err-s2-points", targets: "err-s2-targets", n_grid: "err-s2-grid", measure: "err-s2-measure" };
  return latest(view, editor.locator(view, slots), async (state, signal, current) => {
    const result = await sphereSmoothness(state, signal);
    if (!current()) return;
    shown = { archs: state.archs, result, measure: state.smeasure, columns: null };
    shown.columns = await draw(figure, table, state.archs, result, state.smeasure);
  }, [editor.list]);
}

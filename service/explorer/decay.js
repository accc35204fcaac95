// Spectra on the sphere S^(d-1): |lambda_k| against k on log-log axes, each architecture's fitted
// decay and the ReLU law (k^-d for the NTK, k^-(d+2) for the NNGP) beside it (issue 22).

import { run } from "./api.js";
import { label, spec } from "./architectures.js";
import { color, element, forArch, plot } from "./ui.js";

const PROFILE_GRID = 8;  // the circle's profile comes with every answer: the smallest grid the API takes

/** The spectrum request of one architecture's Funk-Hecke eigenvalues on S^(d-1). */
export function sphereRequest(arch, state) {
  return { architecture: spec(arch), kernel: state.skernel, n_grid: PROFILE_GRID, sphere_dim: state.sdim, k_max: state.kmax };
}

/** Every architecture's answer; `tag(i, promise)` marks each failure with its architecture. */
export function sphereSpectra(state, signal, tag = forArch) {
  return Promise.all(state.archs.map((arch, i) => tag(i, run("spectrum", sphereRequest(arch, state), { signal }))));
}

const TICKS = Array.from({ length: 11 }, (_, e) => 2 ** e);  // 1, 2, 4, ..., 1024 (k_max <= 1024)
const minus = (text) => String(text).replace("-", "−");  // a minus sign, not a hyphen
const fixed = (x, digits) => minus(x.toFixed(digits));

/** "k^(−2.97 ± 0.06)", or "no fit" when the API fitted none. */
export function fitted(decay) {
  if (decay.value === null) return "no fit (fewer than 3 resolved degrees)";
  return `k^(${fixed(decay.value, 2)} ± ${decay.standard_error.toFixed(2)})`;
}

const NOTCH = 1e-6;  // |lambda_k| below this times a neighbour's: a zero by symmetry, come out as rounding

/** The centre of the fitted points on log-log axes: the mean of log k and of log |lambda_k| over the
 * fitted range (a least-squares line passes through it). The API skips the degrees it does not
 * resolve (an odd kernel's even degrees, an even kernel's odd ones) without listing them; here, a
 * degree NOTCH times below a neighbour is skipped. Null: no degree left. */
function centroid(coefficients, decay) {
  const size = (k) => (k >= 0 && k < coefficients.length ? Math.abs(coefficients[k]) : 0);
  const ks = [];
  for (let k = decay.k_min; k <= decay.k_max; k += 1) {
    if (size(k) > 0 && size(k) >= NOTCH * Math.max(size(k - 1), size(k + 1))) ks.push(k);
  }
  if (!ks.length) return null;
  const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
  return { logK: mean(ks.map(Math.log)), logLambda: mean(ks.map((k) => Math.log(Math.abs(coefficients[k])))) };
}

/** A line of slope `slope` on log-log axes through `centre`, over `ks`. */
function line(centre, slope, ks) {
  return { x: ks, y: ks.map((k) => Math.exp(centre.logLambda + slope * (Math.log(k) - centre.logK))) };
}

/** The degrees over which the law's line is drawn: from where it leaves the plot's top (the largest
 * |lambda_k|, k >= 1; k = 1 at the latest) to k_max, so that where the law sets in shows. */
function lawRange(centre, slope, top, decay) {
  const start = Math.exp(centre.logK + (Math.log(top) - centre.logLambda) / slope);
  return [Math.min(Math.max(1, start), decay.k_min), decay.k_max];
}

/** Draw the answers (one per architecture of `archs`) into `figure`, and their fits into `table`. */
export async function drawSphereSpectra(figure, table, archs, answers, state) {
  const d = state.sdim;
  const kernel = state.skernel.toUpperCase();
  const traces = answers.flatMap((answer, i) => {
    const decay = answer.decay_exponent;
    const ks = answer.coefficients.map((_, k) => k).slice(1);  // k = 0 has no place on a log axis
    const group = { legendgroup: String(i), line: { color: color(i) } };
    const shown = [{ x: ks, y: ks.map((k) => Math.abs(answer.coefficients[k])), mode: "lines+markers", marker: { size: 4 },
      name: `${label(archs[i])}: fit ${fitted(decay)}`, meta: { architecture: i, exponent: decay.value, standard_error: decay.standard_error }, ...group }];
    const centre = centroid(answer.coefficients, decay);
    if (centre && decay.value !== null) {
      shown.push({ ...line(centre, decay.value, [decay.k_min, decay.k_max]), mode: "lines", name: "fitted decay", showlegend: false,
        meta: { architecture: i, fit: decay.value }, ...group, line: { color: color(i), dash: "dash", width: 3 } });
    }
    if (centre && decay.asymptotic !== null) {
      const top = Math.max(...ks.map((k) => Math.abs(answer.coefficients[k])));
      shown.push({ ...line(centre, decay.asymptotic, lawRange(centre, decay.asymptotic, top, decay)), mode: "lines", name: `law k^${minus(decay.asymptotic)}`, showlegend: false,
        meta: { architecture: i, law: decay.asymptotic }, ...group, line: { color: "#555", dash: "dot", width: 2 } });
    }
    return shown;
  });
  const range = answers.length ? `k = ${answers[0].decay_exponent.k_min}..${answers[0].decay_exponent.k_max}` : "";
  await plot(figure, traces, {
    title: { text: `|λ_k| of the ${kernel} on S^${d - 1} (d = ${d}); dashed: the fitted decay over ${range}; dotted: the ReLU law k^${minus(kernel === "NTK" ? -d : -(d + 2))}` },
    xaxis: { title: { text: "degree k" }, type: "log", tickvals: TICKS, ticktext: TICKS.map(String) },
    yaxis: { title: { text: "|λ_k|" }, type: "log", exponentformat: "power" },
  });
  const cell = (text) => element("td", {}, text);
  table.replaceChildren(element("caption", {}, `Decay of the ${kernel}'s eigenvalues on S^${d - 1}: fitted exponent ± standard error`),
    element("tr", {}, ...["architecture", "fitted exponent", "± s.e.", "degrees fitted", "ReLU law"].map((h) => element("th", { scope: "col" }, h))),
    ...answers.map(({ decay_exponent: e }, i) => element("tr", {}, cell(label(archs[i])),
      cell(e.value === null ? "none" : fixed(e.value, 3)), cell(e.standard_error === null ? "" : e.standard_error.toFixed(3)),
      cell(`${e.k_min}..${e.k_max} (${e.points})`), cell(e.asymptotic === null ? "none (not ReLU)" : minus(e.asymptotic)))));
}

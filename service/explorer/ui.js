// Shared page mechanics: building elements, errors beside their controls, busy states, plots, downloads.
// Text reaches the page only as text: elements are built here (never from HTML strings), and plot
// trace names, which Plotly reads as its own HTML-like markup, are escaped by plot().

// plotly.min.js (4.8 MB, from the plotly wheel) loads beside the page: controls work and requests
// leave before it has run; plots wait for it.
const plotly = new Promise((resolve, reject) => {
  const script = document.getElementById("plotly");
  if (window.Plotly) resolve(window.Plotly);
  script.addEventListener("load", () => resolve(window.Plotly));
  script.addEventListener("error", () => reject(new Error("plotly.min.js did not load")));
});

/** A new element: `attributes` set as given (true: present and empty; false, null, undefined: absent),
 * `children` appended (strings as text nodes, never parsed). */
export function element(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === true) made.setAttribute(name, "");
    else if (value !== false && value !== null && value !== undefined) made.setAttribute(name, String(value));
  }
  made.append(...children);
  return made;
}

/** `text` shown as is by Plotly, which reads tags (<b>, <a href>, <br>) and entities in trace names. */
export function plotText(text) {
  return String(text).replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
}

/** Empty every error slot inside `scope`. */
export function clearErrors(scope) {
  for (const slot of scope.querySelectorAll(".error")) slot.textContent = "";
}

/** Show an API problem in its own words: each {field, message} beside the control that `locate(field)`
 * returns (an error slot), the rest in the view's status line. */
export function showProblem(view, error, locate = () => null) {
  if (error.name === "AbortError") return;
  const status = view.querySelector(".status");
  const problem = error.problem;
  if (!problem) {
    status.textContent = `Error: ${error.message}`;
    status.classList.add("failed");
    return;
  }
  const unplaced = [];
  for (const { field, message } of problem.errors?.length ? problem.errors : [{ field: null, message: problem.detail }]) {
    const slot = field ? locate(field) : null;
    if (slot) slot.textContent = `${field}: ${message}`;
    else unplaced.push(field ? `${field}: ${message}` : message);
  }
  status.textContent = unplaced.length ? `${problem.title} (${problem.status}): ${unplaced.join("; ")}` : `${problem.title} (${problem.status}): see the highlighted fields`;
  status.classList.add("failed");
}

/** Mark a view as computing (or done): its status line, aria-busy, and the dimming of its plots
 * (of all, or only of the elements in `dim`). */
export function busy(view, text, dim = null) {
  const status = view.querySelector(".status");
  status.classList.remove("failed");
  status.textContent = text || "";
  view.setAttribute("aria-busy", text ? "true" : "false");
  view.classList.toggle("computing", Boolean(text) && !dim);
  for (const element of view.querySelectorAll(".plot")) element.classList.toggle("pending", Boolean(text) && Boolean(dim?.includes(element)));
}

const LAYOUT = {  // the legend sits above the plot (Plotly widens the top margin to fit its rows)
  margin: { l: 60, r: 16, t: 10, b: 48 },
  legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
  font: { family: "system-ui, sans-serif", size: 12 },
  paper_bgcolor: "rgba(0,0,0,0)",
  autosize: true,
};

/** Draw (or redraw in place) a plot; `layout` adds to the shared layout, and its title goes to the
 * figure's caption (HTML: read by screen readers, wrapped on a phone). Trace names are shown as
 * plain text (legend and hover label); axis titles and tick labels must be the page's own text. */
export async function plot(figure, traces, { title, ...layout } = {}) {
  const caption = figure.closest("figure")?.querySelector("figcaption");
  if (caption) caption.textContent = title?.text ?? "";
  const named = traces.map((trace) => (trace.name === undefined ? trace : { ...trace, name: plotText(trace.name) }));
  return (await plotly).react(figure, named, { ...LAYOUT, ...layout, legend: { ...LAYOUT.legend, ...layout.legend } },
    { responsive: true, displaylogo: false });
}

/** A final word in the view's status line (the view is not busy). */
export function note(view, text) {
  busy(view, "");
  view.querySelector(".status").textContent = text;
}

/** A view's update that keeps only the latest: each call aborts the previous one's requests, shows
 * "Computing", and drops answers that arrive after a newer call. `work(state, signal, current)`;
 * `locate(field, error)` finds the error slot of an API field. */
export function latest(view, locate, work, clear = []) {
  let generation = 0;
  let controller = null;
  return async (state) => {
    const mine = ++generation;
    controller?.abort();
    controller = new AbortController();
    for (const scope of [view, ...clear]) clearErrors(scope);
    busy(view, "Computing…");
    try {
      await work(state, controller.signal, () => mine === generation);
      if (mine === generation) busy(view, "");
    } catch (error) {
      if (mine !== generation || error.name === "AbortError") return;
      busy(view, "");
      showProblem(view, error, (field) => locate(field, error));
    }
  };
}

/** Tag a failure with the index of the architecture whose request it was. */
export function forArch(i, promise) {
  return promise.catch((error) => {
    error.arch = i;
    throw error;
  });
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

/** The colour of architecture `i`, the same in every plot. */
export const color = (i) => PALETTE[i % PALETTE.length];

/** Call `work` once calls have paused for `ms`. */
export function debounce(work, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => work(...args), ms);
  };
}

/** Offer a Blob as a file download. */
export function download(name, blob) {
  const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** Rows (arrays or objects) as CSV text. */
export function csv(rows, header) {
  const cell = (value) => {
    const text = value === null || value === undefined ? "" : String(value);
    return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = header ? [header.map(cell).join(",")] : [];
  for (const row of rows) lines.push((Array.isArray(row) ? row : header.map((key) => row[key])).map(cell).join(","));
  return `${lines.join("\n")}\n`;
}

/** 2 pi linspace(0, 1, m) - pi: the paper's training angles (both -pi and pi). */
export function paperAngles(m) {
  return Array.from({ length: m }, (_, i) => (m === 1 ? -Math.PI : -Math.PI + (2 * Math.PI * i) / (m - 1)));
}

/** The paper's target 0.5 cos b + sin 4b. */
export const paperTarget = (b) => 0.5 * Math.cos(b) + Math.sin(4 * b);

export const ANGLE_AXIS = { range: [-Math.PI, Math.PI], title: { text: "angle b (radians)" }, tickvals: [-Math.PI, -Math.PI / 2, 0, Math.PI / 2, Math.PI], ticktext: ["-π", "-π/2", "0", "π/2", "π"] };

// The explorer: wires the state (in the URL), the architecture list, the tabs and the views.

import { get, setToken } from "./api.js";
import { ArchitectureEditor } from "./architectures.js";
import { FiniteView } from "./finite.js";
import { interpolationView } from "./interpolation.js";
import { JobsView } from "./jobs.js";
import { shapesView } from "./shapes.js";
import { spectraView } from "./spectra.js";
import { coerce, load, save } from "./state.js";
import { debounce, showProblem } from "./ui.js";

const state = load();
const section = (name) => document.getElementById(`view-${name}`);
const editor = new ArchitectureEditor(document.getElementById("arch-list"), document.getElementById("arch-add"),
  document.getElementById("arch-reset"), (archs) => change({ archs }));
const finite = new FiniteView(section("finite"), editor, () => state);
const jobs = new JobsView(section("jobs"), () => state);
const computed = {
  shapes: shapesView(section("shapes"), editor),
  interpolation: interpolationView(section("interpolation"), editor),
  spectra: spectraView(section("spectra"), editor),
};
const stale = new Set(Object.keys(computed));
const tabs = [...document.querySelectorAll('[role="tab"]')];

/** Bring the active view up to date (computed views re-ask the API only when their inputs changed). */
async function refresh() {
  if (stale.has(state.view)) {
    stale.delete(state.view);
    await computed[state.view](structuredClone(state));
  }
  if (state.view === "jobs") jobs.refresh();
}
const refreshSoon = debounce(refresh, 250);

/** Show the own-values box only for the own target. */
function sync() {
  document.querySelector(".own-values").hidden = state.target !== "own";
}

function change(patch) {
  Object.assign(state, patch);
  save(state);
  sync();
  if ("archs" in patch) finite.render(state);
  if ("experiment" in patch || "scale" in patch) jobs.render(state);
  for (const name of Object.keys(computed)) stale.add(name);
  refreshSoon();
}

function show(view) {
  state.view = view;
  save(state);
  for (const tab of tabs) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    section(tab.dataset.view).hidden = !selected;
  }
  document.body.classList.toggle("wide-view", view === "jobs");
  refresh();
}

for (const tab of tabs) {
  tab.addEventListener("click", () => show(tab.dataset.view));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1, Home: -tabs.indexOf(tab), End: tabs.length - 1 - tabs.indexOf(tab) }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
    next.focus();
    show(next.dataset.view);
  });
}

for (const control of document.querySelectorAll("[data-key]")) {
  const key = control.dataset.key;
  if (control.type === "checkbox") control.checked = state[key];
  else if (key !== "tarch" && key !== "experiment") control.value = state[key];
  control.addEventListener(control.tagName === "SELECT" || control.type === "checkbox" ? "change" : "input", () =>
    change({ [key]: control.type === "checkbox" ? control.checked : coerce(key, control.value) }));
}

/** The activations the API accepts, from its own schema (until it answers, the list offers relu). */
async function activations() {
  const schema = await get("/openapi.json");
  editor.activations = schema.components.schemas.ArchitectureSpec.properties.activation.enum ?? editor.activations;
  if (!editor.list.contains(document.activeElement)) editor.render(state.archs);
}

/** A 401 (RESKERNEL_API_TOKEN is set): ask for the token, keep it for this tab, start again with it. */
function askForToken() {
  const form = document.getElementById("token-form");
  window.addEventListener("reskernel:unauthorized", () => {
    if (!form.hidden) return;
    form.hidden = false;
    form.querySelector("input").focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(form.querySelector("input").value.trim());
    window.location.reload();
  });
}

async function start() {
  askForToken();
  editor.render(state.archs);
  finite.render(state);
  sync();
  activations().catch(() => {});
  jobs.load().then(() => jobs.render(state), (error) => showProblem(section("jobs"), error));
  if (!tabs.some((tab) => tab.dataset.view === state.view)) state.view = "shapes";
  performance.mark("explorer-interactive");
  document.body.dataset.ready = "interactive";
  show(state.view);
  if (state.view in computed) {
    await new Promise((resolve) => {
      const check = () => (section(state.view).querySelector(".js-plotly-plot") ? resolve() : setTimeout(check, 20));
      check();
    });
  }
  performance.mark("explorer-first-plot");
  document.body.dataset.ready = "plotted";
}

start();

// The explorer: wires the state (in the URL), the architecture list, the tabs and the views.

import { get, setToken } from "./api.js";
import { ArchitectureEditor } from "./architectures.js";
import { FiniteView } from "./finite.js";
import { interpolationView } from "./interpolation.js";
import { JobsView } from "./jobs.js";
import { QuestionsView, fillQuestions } from "./questionview.js";
import { shapesView } from "./shapes.js";
import { spectraView } from "./spectra.js";
import { sphereView } from "./sphereview.js";
import { checkArchs, coerce, load, save } from "./state.js";
import { debounce, element, showProblem } from "./ui.js";

const tabs = [...document.querySelectorAll('[role="tab"]')];
fillQuestions(document.getElementById("question-name"));
const choices = { view: tabs.map((tab) => tab.dataset.view) };  // what a link may choose: the tabs, the fixed selects
for (const select of document.querySelectorAll("select[data-key]")) {
  if (select.options.length) choices[select.dataset.key] = [...select.options].map((option) => option.value);
}
const { state, dropped } = load(choices);
const section = (name) => document.getElementById(`view-${name}`);
const editor = new ArchitectureEditor(document.getElementById("arch-list"), document.getElementById("arch-add"),
  document.getElementById("arch-reset"), (archs) => change({ archs }));
const finite = new FiniteView(section("finite"), editor, () => state);
const jobs = new JobsView(section("jobs"), () => state);
const questions = new QuestionsView(section("questions"));
const computed = {
  shapes: shapesView(section("shapes"), editor),
  interpolation: interpolationView(section("interpolation"), editor),
  sphere: sphereView(section("sphere"), editor),
  spectra: spectraView(section("spectra"), editor),
};
const stale = new Set(Object.keys(computed));

/** Bring the active view up to date (computed views re-ask the API only when their inputs changed). */
async function refresh() {
  if (stale.has(state.view)) {
    stale.delete(state.view);
    await computed[state.view](structuredClone(state));
  }
  if (state.view === "jobs") jobs.refresh();
}
const refreshSoon = debounce(refresh, 250);

/** Show the own-values boxes only for the own targets. */
function sync() {
  document.querySelector(".own-circle").hidden = state.target !== "own";
  document.querySelector(".own-s2").hidden = state.starget !== "own";
}

function change(patch) {
  Object.assign(state, patch);
  save(state);
  sync();
  if ("archs" in patch) finite.render(state);
  if ("experiment" in patch || "scale" in patch) jobs.render(state);
  if ("question" in patch) questions.render(state);
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
  document.body.classList.toggle("wide-view", view === "jobs" || view === "questions");
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

/** The API's own contract for an architecture (its OpenAPI schema), or null when it does not answer. */
async function architectureSchema() {
  try {
    return (await get("/openapi.json")).components.schemas.ArchitectureSpec;
  } catch {
    return null;
  }
}

/** Say what of the link was left out, and why (as text: the link's values are quoted, never run). */
function notice(lines) {
  const box = document.getElementById("link-notice");
  box.replaceChildren(element("p", {}, "Parts of this link were not valid and were left out:"),
    element("ul", {}, ...lines.map((line) => element("li", {}, line))));
  box.hidden = !lines.length;
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
  const schema = await architectureSchema();  // the link's architectures are checked before anything shows them
  editor.activations = schema?.properties.activation.enum ?? editor.activations;
  const checked = checkArchs(state.archs, schema);
  state.archs = checked.archs;
  notice([...dropped, ...checked.dropped]);
  editor.render(state.archs);
  finite.render(state);
  sync();
  jobs.load().then(() => jobs.render(state), (error) => showProblem(section("jobs"), error));
  questions.render(state);
  questions.load().catch((error) => showProblem(section("questions"), error));
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

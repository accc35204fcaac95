// View 6: the paper's experiments (run, progress, cancel, figure and tables) and the job list
// (status, progress, cancel, downloads as .npy and CSV).

import { cancel, get, request, settle, submit } from "./api.js";
import { busy, clearErrors, csv, download, element, note, showProblem } from "./ui.js";

/** An array (nested lists up to 3-D) as CSV rows: its values, with leading index columns past 2-D. */
function arrayRows(value) {
  if (!Array.isArray(value)) return [[value]];
  if (!Array.isArray(value[0])) return value.map((v) => [v]);
  if (!Array.isArray(value[0][0])) return value;
  return value.flatMap((block, i) => block.map((row) => [i, ...row]));
}

/** A result table (a list of rows, each an object) as a <table> captioned `name`. */
function resultTable(name, rows) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cell = (v) => String(typeof v === "number" ? Number(v.toPrecision(6)) : v ?? "–");
  return element("table", {}, element("caption", {}, name),
    element("tr", {}, ...columns.map((c) => element("th", { scope: "col" }, c))),
    ...rows.map((row) => element("tr", {}, ...columns.map((c) => element("td", {}, cell(row[c]))))));
}

/** A link to a file of the API, fetched by the page when clicked (so that it carries the token). */
const fileLink = (path, name, text) => element("a", { href: path, download: name, "data-fetch": true }, text);

/** Download the file at `path` (a link a plain navigation could not send the token with). */
async function fetchFile(path, name) {
  const response = await request(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  download(name, await response.blob());
}

export class JobsView {
  constructor(view, getState) {
    this.view = view;
    this.getState = getState;
    this.select = view.querySelector("#experiment-name");
    this.parameters = view.querySelector("#experiment-parameters");
    this.progress = view.querySelector("#experiment-progress");
    this.output = view.querySelector("#experiment-output");
    this.table = view.querySelector("#jobs-table");
    this.runButton = view.querySelector("#experiment-run");
    this.cancelButton = view.querySelector("#experiment-cancel");
    this.experiments = [];
    this.runButton.addEventListener("click", () => this.runExperiment());
    this.cancelButton.addEventListener("click", () => this.job && cancel(this.job).catch((error) => showProblem(view, error)));
    view.querySelector("#jobs-refresh").addEventListener("click", () => this.refresh());
    this.table.addEventListener("click", (event) => this.act(event.target.closest("button")));
    view.addEventListener("click", (event) => {  // file links are fetched, so that they carry the API token
      const link = event.target.closest("a[data-fetch]");
      if (!link) return;
      event.preventDefault();
      fetchFile(link.getAttribute("href"), link.getAttribute("download")).catch((error) => showProblem(view, error));
    });
  }

  /** The experiments, as the API lists them (never a hard-coded list). */
  async load() {
    this.experiments = await get("/v1/experiments");
    this.select.replaceChildren(...this.experiments.map((e) => new Option(e.title, e.name)));
  }

  render(state) {
    if (!this.experiments.length) return;
    const chosen = this.experiments.find((e) => e.name === state.experiment) ?? this.experiments[0];
    this.select.value = chosen.name;
    this.view.querySelector("#experiment-defaults").textContent =
      `${chosen.description} Parameters at the ${state.scale} scale: ${JSON.stringify(chosen[state.scale])}`;
  }

  async runExperiment() {
    const state = this.getState();
    const name = this.select.value;
    clearErrors(this.view);
    let parameters;
    try {
      parameters = JSON.parse(this.parameters.value || "{}");
    } catch (error) {
      this.view.querySelector("#err-parameters").textContent = `not JSON: ${error.message}`;
      return;
    }
    this.runButton.disabled = true;
    this.progress.value = 0;
    try {
      busy(this.view, `Submitting ${name}…`);
      this.job = await submit(`experiments/${name}`, { scale: state.scale, parameters });
      this.cancelButton.disabled = false;
      this.refresh();
      const status = await settle(this.job, {
        onProgress: (s) => {
          this.progress.value = s.progress;
          busy(this.view, `${name}: ${s.message}`);
        },
      });
      this.progress.value = 1;
      this.show(name, status);
      note(this.view, `${name}: done.`);
    } catch (error) {
      busy(this.view, "");
      showProblem(this.view, error, (field) => this.view.querySelector(`#err-${CSS.escape(field.split(".")[0])}`));
    } finally {
      this.job = null;
      this.runButton.disabled = false;
      this.cancelButton.disabled = true;
      this.refresh();
    }
  }

  show(name, status) {
    const tables = status.result?.values?.tables ?? {};
    const image = element("img", { alt: `Figure of the experiment ${name}` });
    this.output.replaceChildren(
      element("figure", {}, image, element("figcaption", {}, `${name} (`, fileLink(`/v1/jobs/${status.id}/figure.svg`, `${name}.svg`, "SVG"), ")")),
      ...Object.entries(tables).flatMap(([table, rows]) => {
        const header = [...new Set(rows.flatMap((row) => Object.keys(row)))];
        const save = element("button", { type: "button" }, `Download ${table}.csv`);
        save.addEventListener("click", () => download(`${name}-${table}.csv`, new Blob([csv(rows, header)], { type: "text/csv" })));
        return [element("div", { class: "table-scroll" }, resultTable(table, rows)), save];
      }));
    request(`/v1/jobs/${status.id}/figure.png`).then(async (response) => {  // fetched, so that it carries the API token
      if (response.ok) image.src = URL.createObjectURL(await response.blob());
    }).catch((error) => showProblem(this.view, error));
  }

  /** Redraw the job list (newest first); keeps polling while a job is active and the view shown. */
  async refresh() {
    clearTimeout(this.timer);
    let page;
    try {
      page = await get("/v1/jobs?limit=30");
    } catch (error) {
      showProblem(this.view, error);
      return;
    }
    const rows = page.jobs.map((job) => {
      const id = String(job.id);
      const actions = [];
      if (["queued", "running"].includes(job.status)) actions.push(element("button", { type: "button", "data-act": "cancel" }, "Cancel"));
      if (job.status === "succeeded") actions.push(element("button", { type: "button", "data-act": "files" }, "Downloads"));
      return element("tr", { "data-id": id },
        element("td", {}, element("code", { title: id }, id.slice(0, 10))),
        element("td", {}, String(job.operation)),
        element("td", { class: `state-${job.status}` }, String(job.status)),
        element("td", {}, element("progress", { max: 1, value: job.progress, "aria-label": `progress of job ${id.slice(0, 10)}` }),
          ` ${job.message}`),
        element("td", {}, new Date(job.created_at * 1000).toLocaleTimeString()),
        element("td", {}, ...actions));
    });
    this.table.replaceChildren(element("caption", {}, `${page.total} jobs (newest 30)`),
      element("tr", {}, ...["id", "operation", "status", "progress", "created", "actions"].map((c) => element("th", { scope: "col" }, c))),
      ...rows);
    if (!this.view.hidden && page.jobs.some((job) => ["queued", "running"].includes(job.status))) {
      this.timer = setTimeout(() => this.refresh(), 2000);
    }
  }

  async act(button) {
    if (!button) return;
    const row = button.closest("tr");
    const id = row.dataset.id;
    try {
      if (button.dataset.act === "cancel") {
        await cancel(id);
        await this.refresh();
      } else if (button.dataset.act === "files") {
        const status = await get(`/v1/jobs/${id}`);
        const links = Object.entries(status.result.arrays).map(([name, spec]) => element("li", {}, `${name} (${spec.shape.join(" × ")}) `,
          element("button", { type: "button", "data-act": "npy", "data-array": name }, ".npy"), " ",
          element("button", { type: "button", "data-act": "csv", "data-array": name }, "CSV")));
        if (!links.length) links.push(element("li", {}, "no arrays: the values are in the result JSON"));
        const holder = element("tr", { "data-id": id }, element("td", { colspan: 6 }, element("ul", { class: "files" }, ...links,
          element("li", {}, fileLink(`/v1/jobs/${id}/result`, `${status.operation}.json`, "result JSON")))));
        row.after(holder);
        holder.querySelector("button")?.focus();
      } else if (button.dataset.act === "npy") {
        const url = `/v1/jobs/${id}/result?array=${encodeURIComponent(button.dataset.array)}`;
        // no-store: the same URL answers JSON or .npy by Accept, and the service does not send Vary: Accept
        const response = await request(url, { headers: { Accept: "application/x-npy" }, cache: "no-store" });
        if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
        download(`${button.dataset.array}.npy`, await response.blob());
      } else if (button.dataset.act === "csv") {
        const response = await request(`/v1/jobs/${id}/result?array=${encodeURIComponent(button.dataset.array)}`,
          { headers: { Accept: "application/json" }, cache: "no-store" });
        if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
        const value = await response.json();
        download(`${button.dataset.array}.csv`, new Blob([csv(arrayRows(value))], { type: "text/csv" }));
      }
    } catch (error) {
      showProblem(this.view, error);
    }
  }
}

// View 6: the paper's experiments (run, progress, cancel, figure and tables) and the job list
// (status, progress, cancel, downloads as .npy and CSV).

import { cancel, get, request, settle, submit } from "./api.js";
import { busy, clearErrors, csv, download, note, showProblem } from "./ui.js";

const escape = (text) => String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

/** An array (nested lists up to 3-D) as CSV rows: its values, with leading index columns past 2-D. */
function arrayRows(value) {
  if (!Array.isArray(value)) return [[value]];
  if (!Array.isArray(value[0])) return value.map((v) => [v]);
  if (!Array.isArray(value[0][0])) return value;
  return value.flatMap((block, i) => block.map((row) => [i, ...row]));
}

function tableHtml(name, rows) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cell = (v) => (typeof v === "number" ? Number(v.toPrecision(6)) : v ?? "–");
  return `<table><caption>${escape(name)}</caption><tr>${columns.map((c) => `<th scope="col">${escape(c)}</th>`).join("")}</tr>` +
    rows.map((row) => `<tr>${columns.map((c) => `<td>${escape(cell(row[c]))}</td>`).join("")}</tr>`).join("") + "</table>";
}

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
    this.output.innerHTML = `<figure><img alt="Figure of the experiment ${escape(name)}">` +
      `<figcaption>${escape(name)} (<a href="/v1/jobs/${status.id}/figure.svg" download="${escape(name)}.svg" data-fetch>SVG</a>)</figcaption></figure>` +
      Object.entries(tables).map(([table, rows]) => `<div class="table-scroll">${tableHtml(table, rows)}</div>` +
        `<button type="button" data-table="${escape(table)}">Download ${escape(table)}.csv</button>`).join("");
    const image = this.output.querySelector("img");  // fetched, so that it carries the API token
    request(`/v1/jobs/${status.id}/figure.png`).then(async (response) => {
      if (response.ok) image.src = URL.createObjectURL(await response.blob());
    }).catch((error) => showProblem(this.view, error));
    for (const button of this.output.querySelectorAll("button[data-table]")) {
      const rows = tables[button.dataset.table];
      const header = [...new Set(rows.flatMap((row) => Object.keys(row)))];
      button.addEventListener("click", () => download(`${name}-${button.dataset.table}.csv`, new Blob([csv(rows, header)], { type: "text/csv" })));
    }
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
      const active = ["queued", "running"].includes(job.status);
      return `<tr data-id="${job.id}"><td><code title="${job.id}">${job.id.slice(0, 10)}</code></td><td>${escape(job.operation)}</td>` +
        `<td class="state-${job.status}">${job.status}</td><td><progress max="1" value="${job.progress}" aria-label="progress of job ${job.id.slice(0, 10)}"></progress> ${escape(job.message)}</td>` +
        `<td>${new Date(job.created_at * 1000).toLocaleTimeString()}</td><td>` +
        (active ? `<button type="button" data-act="cancel">Cancel</button>` : "") +
        (job.status === "succeeded" ? `<button type="button" data-act="files">Downloads</button>` : "") + "</td></tr>";
    });
    this.table.innerHTML = `<caption>${page.total} jobs (newest 30)</caption><tr><th scope="col">id</th><th scope="col">operation</th>` +
      `<th scope="col">status</th><th scope="col">progress</th><th scope="col">created</th><th scope="col">actions</th></tr>${rows.join("")}`;
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
        const links = Object.entries(status.result.arrays).map(([name, spec]) =>
          `<li>${escape(name)} (${spec.shape.join(" × ")}) <button type="button" data-act="npy" data-array="${escape(name)}">.npy</button> ` +
          `<button type="button" data-act="csv" data-array="${escape(name)}">CSV</button></li>`);
        const holder = document.createElement("tr");
        holder.dataset.id = id;
        holder.innerHTML = `<td colspan="6"><ul class="files">${links.join("") || "<li>no arrays: the values are in the result JSON</li>"}` +
          `<li><a href="/v1/jobs/${id}/result" download="${escape(status.operation)}.json" data-fetch>result JSON</a></li></ul></td>`;
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

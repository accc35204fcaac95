// View 7: the questions of issue 23, one view each (questions.js): controls from the experiment's
// declared parameters, a run at the quick scale with progress and cancel, and the figure drawn here
// from the result's JSON (labelled.js), with a caption.

import { cancel, get, settle, submit } from "./api.js";
import { control } from "./declared.js";
import { panels } from "./labelled.js";
import { QUESTIONS } from "./questions.js";
import { tablePanels } from "./tabular.js";
import { busy, clearErrors, element, note, plot, plotText, showProblem } from "./ui.js";

/** The question chooser's options (before the page reads its link: the choices a link may name). */
export function fillQuestions(select) {
  select.replaceChildren(...QUESTIONS.map((spec, i) => new Option(`${i + 1}. ${spec.question}`, spec.id)));
}

/** Say plainly that this service cannot answer a question. */
function missing(spec) {
  return `This service has no experiment "${spec.experiment}" (GET /v1/experiments does not list it), so this question cannot be answered here.`;
}

/** One question's view: built once the experiments are known. */
class Question {
  constructor(spec, info, holder) {
    this.spec = spec;
    this.view = holder;
    holder.replaceChildren(element("h3", {}, spec.question));
    if (!info) {
      holder.append(element("p", { class: "status failed missing", role: "status" }, missing(spec)));
      return;
    }
    const prefix = `q-${spec.id}`;
    const values = { ...info.quick, ...Object.fromEntries(Object.entries(spec.defaults).filter(([key]) => key in info.quick)) };
    this.fixed = Object.fromEntries(Object.entries(spec.defaults).filter(([key]) => key in info.quick && !(key in spec.controls)));
    this.controls = Object.entries(spec.controls).filter(([name]) => name in info.parameters).map(([name, label]) =>
      [name, control(prefix, name, info.parameters[name], values[name], label)]);
    // display choices (spec.display): what to draw of a result, redrawn without running again
    this.display = Object.entries(spec.display ?? {}).map(([key, { label, choices }]) => {
      const select = element("select", { id: `${prefix}-show-${key}` }, ...Object.entries(choices).map(([value, text]) => new Option(text, value)));
      select.addEventListener("change", () => this.result && this.draw(this.result).catch((error) => showProblem(holder, error)));
      return [key, select, element("label", {}, `${label} `, select)];
    });
    this.runButton = element("button", { type: "button", class: "run" }, "Run and draw");
    this.cancelButton = element("button", { type: "button", disabled: true }, "Cancel");
    this.progress = element("progress", { max: 1, value: 0, "aria-label": `Progress of ${spec.experiment}` });
    this.sent = element("p", { class: "hint sent" });
    this.figures = element("div", { class: "grid2" });
    this.caption = element("p", { class: "caption" });
    holder.append(
      element("p", { class: "hint" }, `Answered by the experiment ${info.name}: ${info.title}. ${info.description}`),
      element("div", { class: "controls" }, ...this.controls.flatMap(([, made]) => [made.node, made.error])),
      element("div", { class: "actions" }, this.runButton, this.cancelButton, this.progress),
      ...(this.display.length ? [element("div", { class: "controls" }, ...this.display.map(([, , label]) => label))] : []),
      this.sent,
      element("p", { class: "status", role: "status", "aria-live": "polite" }),
      this.figures, this.caption);
    this.runButton.addEventListener("click", () => this.run());
    this.cancelButton.addEventListener("click", () => this.job && cancel(this.job).catch((error) => showProblem(holder, error)));
    for (const [, made] of this.controls) made.node.addEventListener("change", () => this.describe());
    this.describe();
  }

  /** The request body: the quick scale, the controls' values and the view's lighter defaults. */
  body() {
    return { scale: "quick", parameters: { ...this.fixed, ...Object.fromEntries(this.controls.map(([name, made]) => [name, made.read()])) } };
  }

  describe() {
    this.sent.textContent = `Sends POST /v1/experiments/${this.spec.experiment} ${JSON.stringify(this.body())} (other parameters: the quick scale's).`;
  }

  async run() {
    const body = this.body();
    this.describe();
    clearErrors(this.view);
    this.runButton.disabled = true;
    this.progress.value = 0;
    delete this.view.dataset.job;
    this.result = null;
    try {
      busy(this.view, `Submitting ${this.spec.experiment}…`);
      this.job = await submit(`experiments/${this.spec.experiment}`, body);
      this.view.dataset.job = this.job;
      this.cancelButton.disabled = false;
      await settle(this.job, {
        onProgress: (status) => {
          this.progress.value = status.progress;
          busy(this.view, `${this.spec.experiment}: ${status.message}`);
        },
      });
      this.cancelButton.disabled = true;
      busy(this.view, "Reading the result…");
      const result = await get(`/v1/jobs/${this.job}/result`);
      this.progress.value = 1;
      this.result = result;
      await this.draw(result);
      note(this.view, `Drawn from job ${this.job}.`);
    } catch (error) {
      busy(this.view, "");
      if (error.status === 404 && !this.view.dataset.job) {  // the list was read before the service lost it
        note(this.view, missing(this.spec));
        this.view.querySelector(".status").classList.add("failed", "missing");
      } else if (error.problem?.title === "Canceled") {
        note(this.view, `Canceled: job ${this.job} stopped before its end; nothing drawn.`);
      } else {
        showProblem(this.view, error, (field) => this.controls.find(([name]) => field === `parameters.${name}`
          || field.startsWith(`parameters.${name}.`))?.[1].error ?? null);
      }
    } finally {
      this.job = null;
      this.runButton.disabled = false;
      this.cancelButton.disabled = true;
    }
  }

  /** One figure per panel, each drawn with Plotly from the result's arrays; the caption below. */
  async draw(result) {
    const display = Object.fromEntries(this.display.map(([key, select]) => [key, select.value]));
    const drawn = this.spec.table ? tablePanels(this.spec, result, display, plotText) : panels(this.spec, result, plotText);
    for (const old of this.figures.querySelectorAll(".js-plotly-plot")) window.Plotly?.purge(old);
    const divs = drawn.map((_, k) => element("div", { class: "plot", id: `q-${this.spec.id}-panel-${k}`, role: "img" }));
    this.figures.replaceChildren(...drawn.map((panel, k) => element("figure", { class: "chart" }, element("figcaption"), divs[k])));
    await Promise.all(drawn.map((panel, k) => {
      divs[k].setAttribute("aria-label", panel.title);
      return plot(divs[k], panel.traces, { title: { text: panel.title }, ...panel.layout });
    }));
    this.caption.textContent = this.spec.caption(result, display);
  }
}

export class QuestionsView {
  constructor(view) {
    this.view = view;
    this.select = view.querySelector("#question-name");
    this.holders = Object.fromEntries(QUESTIONS.map((spec) => [spec.id, element("section", { class: "question", "data-question": spec.id,
      "aria-label": spec.question, hidden: true }, element("p", { class: "hint" }, "Reading the experiments (GET /v1/experiments)…"))]));
    view.querySelector("#questions").append(...Object.values(this.holders));
  }

  /** The experiments the service lists: each question gets its view, or the plain word that it has none. */
  async load() {
    const listed = Object.fromEntries((await get("/v1/experiments")).map((info) => [info.name, info]));
    this.questions = QUESTIONS.map((spec) => new Question(spec, listed[spec.experiment], this.holders[spec.id]));
  }

  /** Show the chosen question. */
  render(state) {
    const chosen = QUESTIONS.find((spec) => spec.id === state.question) ?? QUESTIONS[0];
    this.select.value = chosen.id;
    for (const [id, holder] of Object.entries(this.holders)) holder.hidden = id !== chosen.id;
  }
}

// View 5: train an ensemble of finite networks; the loss arrives live from the job's events, then
// the ensemble's mean prediction is drawn beside NTK regression at the same time, and the NTK drift (Fig. 1).

import { cancel, finish, run, submit } from "./api.js";
import { label, spec } from "./architectures.js";
import { ownValues } from "./interpolation.js";
import { ANGLE_AXIS, busy, clearErrors, forArch, note, paperAngles, paperTarget, plot, showProblem } from "./ui.js";

const TEST_ANGLES = Array.from({ length: 181 }, (_, k) => -Math.PI + (2 * Math.PI * k) / 180);
const circle = (angles) => angles.map((b) => [Math.cos(b), Math.sin(b)]);
const EVENT = /^step (\d+)\/\d+, loss (\S+)$/;  // the training job's progress message

/** The train request for the current state (samples and target from the interpolation view). */
function trainRequest(state) {
  const angles = paperAngles(state.n);
  const lr = state.lr.trim() === "auto" ? "auto" : (Number.isFinite(Number(state.lr)) && state.lr.trim() !== "" ? Number(state.lr) : state.lr);
  return {
    architecture: spec(state.archs[state.tarch] ?? state.archs[0]), width: state.width, n_init: state.ninit, steps: state.steps,
    optimizer: state.optimizer, parametrization: state.parametrization, lr, x_train: circle(angles),
    y_train: state.target === "own" ? ownValues(state.values) : angles.map(paperTarget), x_test: circle(TEST_ANGLES),
    track_ntk: true, record_every: Math.max(1, Math.round(state.steps / 50)) || 1,
  };
}

export class FiniteView {
  constructor(view, editor, getState) {
    this.view = view;
    this.editor = editor;
    this.getState = getState;
    this.select = view.querySelector("#train-arch");
    this.progress = view.querySelector("#train-progress");
    this.runButton = view.querySelector("#train-run");
    this.cancelButton = view.querySelector("#train-cancel");
    this.locate = editor.locator(view, { width: "err-train-width" });
    this.runButton.addEventListener("click", () => this.train());
    this.cancelButton.addEventListener("click", () => this.job && cancel(this.job).catch((error) => showProblem(view, error)));
  }

  /** Keep the architecture choice in step with the list. */
  render(state) {
    const choice = Math.min(state.tarch, state.archs.length - 1);
    this.select.replaceChildren(...state.archs.map((arch, i) => new Option(`${i + 1}. ${label(arch)}`, String(i))));
    this.select.value = String(choice);
  }

  async train() {
    const state = this.getState();
    const body = trainRequest(state);
    const index = Math.min(state.tarch, state.archs.length - 1);
    clearErrors(this.view);
    clearErrors(this.editor.list);
    this.runButton.disabled = true;
    this.progress.value = 0;
    const live = { x: [], y: [], mode: "lines+markers", name: "loss (live, from the job's events)" };
    const lossPlot = this.view.querySelector("#plot-loss");
    const lossLayout = { title: { text: `Training loss, ${label(state.archs[index])}, width ${state.width}` },
      xaxis: { title: { text: "step" } }, yaxis: { title: { text: "loss" }, type: "log", exponentformat: "power" } };
    await plot(lossPlot, [live], lossLayout);
    try {
      busy(this.view, "Submitting…");
      this.job = await forArch(index, submit("train", body));
      this.cancelButton.disabled = false;
      const result = await finish(this.job, {
        onProgress: (status) => {
          this.progress.value = status.progress;
          busy(this.view, `Training: ${status.message}`);
          const match = EVENT.exec(status.message);
          if (match && Number(match[1]) > (live.x.at(-1) ?? -1)) {
            live.x.push(Number(match[1]));
            live.y.push(Number(match[2]));
            plot(lossPlot, [live], lossLayout);
          }
        },
      });
      this.progress.value = 1;
      busy(this.view, "Trained; computing the NTK regression beside it…");
      const ntk = await forArch(index, run("regression", {
        x_train: body.x_train, y_train: body.y_train, x_test: body.x_test, architecture: body.architecture, kernel: "ntk",
        t: body.optimizer === "gd" ? result.lr * body.steps : null,
      }));
      await this.draw(state, body, result, ntk, lossLayout);
      note(this.view, `Done: ${body.n_init} networks, ${body.steps} steps, learning rate ${result.lr.toPrecision(3)}.`);
    } catch (error) {
      busy(this.view, "");
      showProblem(this.view, error, this.locate);
    } finally {
      this.job = null;
      this.runButton.disabled = false;
      this.cancelButton.disabled = true;
    }
  }

  async draw(state, body, result, ntk, lossLayout) {
    const steps = result.steps;
    await plot(this.view.querySelector("#plot-loss"), result.loss.map((curve, k) => ({
      x: steps, y: curve, mode: "lines", name: `network ${k + 1}`, meta: { network: k } })), lossLayout);
    const final = result.mean_prediction.at(-1);
    const time = body.optimizer === "gd" ? `NTK regression at t = lr × steps = ${(result.lr * body.steps).toPrecision(3)}` : "NTK interpolant";
    await plot(this.view.querySelector("#plot-prediction"), [
      { x: TEST_ANGLES, y: final, mode: "lines", name: `mean of ${body.n_init} trained networks` },
      { x: TEST_ANGLES, y: ntk.mean, mode: "lines", name: time, line: { dash: "dash" } },
      { x: paperAngles(state.n), y: body.y_train, mode: "markers", name: "samples", marker: { size: 9, color: "black" } },
    ], { title: { text: "Trained networks beside the NTK" }, xaxis: ANGLE_AXIS, yaxis: { title: { text: "f(b)" } } });
    await plot(this.view.querySelector("#plot-drift"), result.ntk_drift.map((curve, k) => ({
      x: steps, y: curve, mode: "lines", name: `network ${k + 1}` })), {
      title: { text: "NTK drift ||Θt − Θ0|| / ||Θ0||" }, xaxis: { title: { text: "step" } }, yaxis: { title: { text: "relative drift" } } });
  }
}

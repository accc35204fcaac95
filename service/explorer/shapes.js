// View 2: NTK and NNGP against the angle (Fig. 2, top).

import { run } from "./api.js";
import { label, spec } from "./architectures.js";
import { ANGLE_AXIS, busy, color, forArch, latest, plot } from "./ui.js";

const PROFILE_GRID = 256;  // also the spectra view's, so the same jobs serve both

/** The spectrum request of one architecture's kernel profile. */
export function profileRequest(arch, kernel, normalize) {
  return { architecture: spec(arch), kernel, n_grid: PROFILE_GRID, normalize };
}

export function shapesView(view, editor) {
  const figure = view.querySelector("#plot-shapes");
  return latest(view, editor.locator(view), async (state, signal, current) => {
    const kernels = state.kernel === "both" ? ["ntk", "nngp"] : [state.kernel];
    const tasks = state.archs.flatMap((arch, i) => kernels.map((kernel) => ({ arch, i, kernel })));
    let done = 0;
    const results = await Promise.all(tasks.map(({ arch, i, kernel }) =>
      forArch(i, run("spectrum", profileRequest(arch, kernel, state.norm), { signal })).then((result) => {
        done += 1;
        if (current()) busy(view, `Computing: ${done} of ${tasks.length} kernels`);
        return result;
      })));
    if (!current()) return;
    const traces = results.map((result, k) => ({
      x: result.angles, y: result.profile, mode: "lines", name: `${label(tasks[k].arch)} ${tasks[k].kernel.toUpperCase()}`,
      legendgroup: String(tasks[k].i), line: { dash: tasks[k].kernel === "nngp" ? "dot" : "solid", color: color(tasks[k].i) },
      meta: { architecture: tasks[k].i, kernel: tasks[k].kernel },
    }));
    await plot(figure, traces, {
      title: { text: `Kernel against the angle${state.norm ? " (unit peak)" : ""}` }, xaxis: ANGLE_AXIS,
      yaxis: { title: { text: state.norm ? "K(b) / K(0)" : "K(b)" } },
    });
  }, [editor.list]);
}

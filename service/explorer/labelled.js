// An experiment's result arrays read as labelled arrays, and cut into Plotly panels and traces as a
// question's spec says (questions.js). Each axis of an array is named after a list of the result's
// labels (e.g. "network" -> labels.curves); an array's name may hold an axis value ("theory_{kernel}").
//
// spec.dims    {axis: labels key}: the coordinates of each axis
// spec.series  {name: {array, axes, mode?, line?, marker?, error?}}: the arrays drawn; `error(get, i)`
//              gives an error bar, get(template) reading another array at the same point
// spec.panels  the axes (and "series") with one panel per combination
// spec.x       {dim, title, type, label?}: the axis along x; label(value) shortens a category's text
// spec.colour  the axis whose value picks the colour; spec.style {axis: {value: trace properties}}
// spec.name, spec.panelTitle, spec.y.title: functions of the point's coordinates {axis: value}

import { color } from "./ui.js";

/** Every combination of the coordinates of `dims`: a list of {axis: value}. */
function combinations(dims, coords) {
  return dims.reduce((found, dim) => found.flatMap((at) => coords[dim].map((value) => ({ ...at, [dim]: value }))), [{}]);
}

/** `template` with each {axis} replaced by its value at `at`. */
export const fill = (template, at) => template.replace(/\{(\w+)\}/g, (_, axis) => String(at[axis]));

/** The coordinates of each axis: the result's labels, and "series" (the spec's series names). */
export function coordinates(spec, result) {
  const coords = { series: Object.keys(spec.series) };
  for (const [axis, key] of Object.entries(spec.dims)) {
    const values = result.labels?.[key];
    if (!Array.isArray(values)) throw new Error(`the result has no list labels.${key} (axis ${axis})`);
    coords[axis] = values;
  }
  return coords;
}

/** The values of array `name` along the x axis at `at` (its other axes fixed): numbers, or null where
 * the API wrote null (a value that is not finite). */
function line(result, name, axes, at, x, coords) {
  const array = result[name];
  if (!Array.isArray(array)) throw new Error(`the result has no array ${name}`);
  return coords[x].map((_, i) => {
    let value = array;
    for (const axis of axes) {
      const index = axis === x ? i : coords[axis].indexOf(at[axis]);
      if (!Array.isArray(value) || index < 0 || index >= value.length) throw new Error(`array ${name} does not match its labels (axis ${axis})`);
      value = value[index];
    }
    return typeof value === "number" ? value : null;
  });
}

/** A Plotly axis: its title (the page's own text), its type, powers of ten on a log axis. Type "auto":
 * log where the data need it (every value positive, spanning at least 1.5 decades), else linear. */
export function axis(title, type = "linear", values = []) {
  if (type === "auto") {
    const finite = values.filter(Number.isFinite);
    const positive = finite.length > 1 && finite.every((v) => v > 0);
    type = positive && Math.max(...finite) / Math.min(...finite) >= 10 ** 1.5 ? "log" : "linear";
  }
  return { title: { text: title }, type, automargin: true, ...(type === "log" ? { exponentformat: "power" } : {}) };
}

/** The panels of `result` as `spec` draws them: [{title, traces, layout, at}], each trace carrying its
 * coordinates in `meta` ({series, array, ...axes}). Text from the API goes into trace names (plot()
 * escapes them), category x values (escaped by `escape`) and figure captions (text). */
export function panels(spec, result, escape) {
  const coords = coordinates(spec, result);
  const x = spec.x.dim;
  const xs = coords[x].map((value) => (typeof value === "number" ? value : escape(spec.x.label ? spec.x.label(value) : value)));
  return combinations(spec.panels, coords).map((panelAt) => {
    const series = "series" in panelAt ? [panelAt.series] : coords.series;
    const traces = series.flatMap((name) => {
      const one = spec.series[name];
      const free = one.axes.filter((axis) => axis !== x && !(axis in panelAt));
      return combinations(free, coords).map((traceAt) => {
        const at = { ...panelAt, ...traceAt, series: name };
        const array = fill(one.array, at);
        const style = Object.entries(spec.style ?? {}).map(([axis, byValue]) => byValue[at[axis]] ?? {});
        const colour = color(spec.colour ? coords[spec.colour].indexOf(at[spec.colour]) : 0);
        const trace = {
          x: xs, y: line(result, array, one.axes, at, x, coords), mode: one.mode ?? "lines+markers", type: "scatter",
          name: spec.name(at), meta: { ...at, array },
          line: Object.assign({ color: colour }, one.line, ...style.map((s) => s.line)),
          marker: Object.assign({ color: colour }, one.marker, ...style.map((s) => s.marker)),
        };
        if (one.error) {
          const get = (template) => line(result, fill(template, at), one.axes, at, x, coords);
          trace.error_y = { type: "data", array: one.error(get), visible: true, thickness: 1, width: 3 };
        }
        return trace;
      });
    });
    const layout = {
      xaxis: axis(spec.x.title, spec.x.type, xs), yaxis: axis(spec.y.title(panelAt), spec.y.type, traces.flatMap((t) => t.y)),
      hovermode: "closest",
    };
    return { title: spec.panelTitle(panelAt), traces, layout, at: panelAt };
  });
}

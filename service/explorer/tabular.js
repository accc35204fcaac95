// A result's tables (lists of rows) drawn as scatter plots, as a question's spec says (questions.js):
// one panel per table whose name matches spec.table.name (its named groups are the panel's
// coordinates), one point per row at (row[x], row[y]), one trace per value of the grouping column.
//
// spec.table   {name: RegExp with named groups, x, y, group, text}: x and y are column names, which
//              may hold the view's display choices ("{measure}"); text: the column shown on hover
// spec.x, spec.y  {title(at), type}: type "auto" is log where the data need it (labelled.js's axis)
// spec.panelTitle(at, result): the figure's caption; at holds the table's groups and the display choices

import { axis, fill } from "./labelled.js";
import { color } from "./ui.js";

const number = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);

/** The panels of `result` as `spec` draws them, with the view's `display` choices: [{title, traces, layout, at}];
 * each trace's meta holds its table, its group and the indices of its rows. A table without the chosen x
 * column gets no panel. Text from the API (groups, hover text) is escaped by `escape`. */
export function tablePanels(spec, result, display, escape) {
  const { name, group, text } = spec.table;
  const found = [];
  for (const [table, rows] of Object.entries(result.tables ?? {})) {
    const match = name.exec(table);
    if (!match || !Array.isArray(rows)) continue;
    const at = { ...match.groups, ...display, table };
    const [x, y] = [fill(spec.table.x, at), fill(spec.table.y, at)];
    if (!rows.some((row) => x in row && y in row)) continue;
    const groups = [...new Set(rows.map((row) => String(row[group])))];
    const traces = groups.map((value, k) => {
      const indices = rows.flatMap((row, i) => (String(row[group]) === value ? [i] : []));
      return {
        x: indices.map((i) => number(rows[i][x])), y: indices.map((i) => number(rows[i][y])), type: "scatter",
        mode: "markers", name: value, text: indices.map((i) => escape(String(rows[i][text]))), hoverinfo: "text+x+y",
        marker: { color: color(k), size: 9 }, meta: { table, group: value, rows: indices, x, y },
      };
    });
    found.push({
      title: spec.panelTitle(at, result), traces, at,
      layout: { xaxis: axis(spec.x.title(at), spec.x.type, traces.flatMap((t) => t.x)),
        yaxis: axis(spec.y.title(at), spec.y.type, traces.flatMap((t) => t.y)), hovermode: "closest" },
    });
  }
  if (!found.length) throw new Error(`the result has no table matching ${name} with the columns asked for`);
  return found;
}

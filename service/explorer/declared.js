// Controls built from an experiment's declared parameters (GET /v1/experiments: type, bounds,
// choices, description), and their values read back as the overrides a request sends. The API
// checks every value: a bad one is sent as typed and comes back as a 422 naming its parameter.

import { element } from "./ui.js";

/** A typed number, or the text itself when it is not one (the API then names the parameter). */
function number(text) {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  return Number.isFinite(Number(trimmed)) ? Number(trimmed) : trimmed;
}

/** The declared bounds and choices, in words. */
function bounds(declared) {
  const parts = [];
  if ("minimum" in declared) parts.push(`≥ ${declared.minimum}`);
  if ("exclusive_minimum" in declared) parts.push(`> ${declared.exclusive_minimum}`);
  if ("maximum" in declared) parts.push(`≤ ${declared.maximum}`);
  if ("max_items" in declared) parts.push(`at most ${declared.max_items} values`);
  return parts.join(", ");
}

/** A control for parameter `name` (its declaration `declared`, its first value `value`), labelled `label`;
 * ids start with `prefix`. Returns {node, read, error}: read() gives the value to send, error the slot
 * for the API's message about it. */
export function control(prefix, name, declared, value, label) {
  const id = `${prefix}-${name}`;
  const error = element("span", { class: "error", id: `${id}-error` });
  const title = `${declared.description} ${bounds(declared)}`.trim();
  const type = String(declared.type);
  const list = type.startsWith("list[");
  const item = list ? type.slice(5, -1) : type;
  if (declared.choices && list) {  // a set of choices: one checkbox each
    const boxes = declared.choices.map((choice) => element("input", { type: "checkbox", value: choice, id: `${id}-${choice}`,
      checked: value.includes(choice) }));
    const node = element("fieldset", { class: "choices", title, "aria-describedby": error.id }, element("legend", {}, label),
      ...boxes.map((box) => element("label", {}, box, ` ${box.value}`)));
    return { node, error, read: () => boxes.filter((box) => box.checked).map((box) => box.value) };
  }
  let input;
  let read;
  if (declared.choices) {
    input = element("select", { id }, ...declared.choices.map((choice) => new Option(String(choice), String(choice))));
    input.value = String(value);
    read = () => declared.choices.find((choice) => String(choice) === input.value) ?? input.value;
  } else if (item === "bool" && !list) {
    input = element("input", { type: "checkbox", id, checked: Boolean(value) });
    read = () => input.checked;
  } else if (list) {
    input = element("input", { type: "text", id, inputmode: item === "str" ? null : "decimal", value: value.join(", ") });
    read = () => input.value.split(/[\s,]+/).filter((token) => token !== "").map((token) => (item === "str" ? token : number(token)));
  } else if (item === "int" || item === "float") {
    input = element("input", { type: "number", id, value, step: item === "int" ? 1 : "any", min: declared.minimum, max: declared.maximum });
    read = () => number(input.value);
  } else {
    input = element("input", { type: "text", id, value });
    read = () => input.value;
  }
  input.setAttribute("aria-describedby", error.id);
  const hint = list && !declared.choices ? " (comma-separated)" : "";
  return { node: element("label", { title }, `${label}${hint} `, input), error, read };
}

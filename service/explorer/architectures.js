// The architectures every view compares: a list the user edits (view 1).

import { DEFAULT_ARCHS } from "./state.js";
import { element } from "./ui.js";

const DEFAULTS = { activation: "relu", sigma_w: 1, sigma_v: 1, alpha: 1, sigma_b: 0 };
const NUMBERS = ["depth", "alpha", "sigma_w", "sigma_v", "sigma_b"];

/** A short name: "ResNet alpha=0.1 L=5", with whatever differs from the defaults. */
export function label(arch) {
  const parts = [arch.kind === "mlp" ? "MLP" : `ResNet α=${arch.alpha ?? 1}`, `L=${arch.depth}`];
  if ((arch.activation ?? "relu") !== "relu") parts.push(arch.activation);
  for (const key of ["sigma_w", "sigma_v", "sigma_b"]) {
    if (arch[key] !== undefined && arch[key] !== DEFAULTS[key] && !(key === "sigma_v" && arch.kind === "mlp")) {
      parts.push(`${key.replace("sigma_", "σ")}=${arch[key]}`);
    }
  }
  return parts.join(" ");
}

/** The request's architecture: the user's values as typed (the API judges them), MLP without alpha. */
export function spec(arch) {
  const out = { ...arch };
  if (out.kind === "mlp") delete out.alpha;
  return out;
}

/** The collapsed line of the less-used fields. */
function summary(arch) {
  const value = (key) => arch[key] ?? DEFAULTS[key];
  return `Activation and scales: ${value("activation")}, σ_w ${value("sigma_w")}, σ_v ${value("sigma_v")}, σ_b ${value("sigma_b")}`;
}

function number(text) {
  return text.trim() !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
}

/** The editor: renders `state.archs` into `list` and calls `changed(archs)` on every edit. */
export class ArchitectureEditor {
  constructor(list, addButton, resetButton, changed) {
    this.list = list;
    this.changed = changed;
    this.activations = ["relu"];
    addButton.addEventListener("click", () => {
      const archs = [...this.archs, { ...this.archs.at(-1) }];
      this.render(archs);
      this.changed(archs);
      this.list.lastElementChild.querySelector("select").focus();
    });
    resetButton.addEventListener("click", () => {
      this.render(structuredClone(DEFAULT_ARCHS));
      this.changed(this.archs);
    });
  }

  /** Draw the rows for `archs`. */
  render(archs) {
    this.archs = archs;
    this.list.replaceChildren(...archs.map((arch, i) => this.row(arch, i)));
  }

  /** The error slot for an API field of architecture `i` (e.g. "depth"). */
  slot(i, key) {
    return this.list.querySelector(`#err-arch-${i}-${key}`);
  }

  /** `locate(field, error)` for a view: an architecture's field beside its control in this list
   * ("architectures.1.depth", or "architecture.depth" of the request tagged with error.arch);
   * any other field beside the view's control whose error slot is `slots[field]` or #err-FIELD. */
  locator(view, slots = {}) {
    return (field, error) => {
      const many = /^architectures\.(\d+)\.(\w+)$/.exec(field);
      if (many) return this.slot(Number(many[1]), many[2]);
      const one = /^architecture\.(\w+)$/.exec(field);
      if (one && error.arch !== undefined) return this.slot(error.arch, one[1]);
      const base = field.split(".")[0];
      return view.querySelector(`#${CSS.escape(slots[base] ?? `err-${base}`)}`);
    };
  }

  row(arch, i) {
    const id = (key) => `arch-${i}-${key}`;
    const value = (key) => arch[key] ?? DEFAULTS[key];
    const mlp = arch.kind === "mlp";  // the MLP has no residual branch: its alpha controls are off
    const described = (key) => ({ id: id(key), "data-arch-key": key, "aria-describedby": `err-arch-${i}-${key}` });
    const field = (key, text, ...controls) => element("div", { class: `field field-${key}` },
      element("label", { for: id(key) }, text), ...controls, element("span", { class: "error", id: `err-arch-${i}-${key}` }));
    const slider = (key, min, max, step) => element("input", { type: "range", id: `${id(key)}-range`, min, max, step,
      value: value(key), "data-arch-key": key, "aria-label": `${key} of architecture ${i + 1} (slider)`,
      disabled: key === "alpha" && mlp });
    const numberBox = (key, min, step) => element("input", { type: "number", ...described(key), min, step,
      value: value(key), disabled: key === "alpha" && mlp });
    const options = (pairs) => pairs.map(([text, option]) => new Option(text, option));
    const activations = [...new Set([...this.activations, value("activation")])].map((a) => [a, a]);
    const custom = ["activation", "sigma_w", "sigma_v", "sigma_b"].some((k) => value(k) !== DEFAULTS[k]);

    const item = element("li", { class: mlp ? "arch mlp" : "arch" },
      element("h3", {}, `${i + 1}. `, element("span", { class: "arch-label" }, label(arch))),
      field("kind", "Kind", element("select", described("kind"), ...options([["ResNet", "resnet"], ["MLP", "mlp"]]))),
      field("depth", "Depth L", slider("depth", 1, 50, 1), numberBox("depth", 1, 1)),
      field("alpha", "Residual scale α", slider("alpha", 0, 1, 0.01), numberBox("alpha", 0, 0.01)),
      element("details", { open: custom }, element("summary", {}, summary(arch)), element("div", { class: "more" },
        field("activation", "Activation", element("select", described("activation"), ...options(activations))),
        field("sigma_w", "σ_w", numberBox("sigma_w", 0, 0.1)),
        field("sigma_v", "σ_v", numberBox("sigma_v", 0, 0.1)),
        field("sigma_b", "Biases σ_b (0: none)", numberBox("sigma_b", 0, 0.1)))),
      element("button", { type: "button", class: "remove", "aria-label": `Remove architecture ${i + 1}`,
        disabled: this.archs.length < 2 }, "Remove"));
    item.querySelector(`#${id("kind")}`).value = arch.kind;
    item.querySelector(`#${id("activation")}`).value = value("activation");
    item.addEventListener("input", (event) => this.edit(i, item, event.target));
    item.querySelector(".remove").addEventListener("click", () => {
      const archs = this.archs.filter((_, j) => j !== i);
      this.render(archs);
      this.changed(archs);
      this.list.querySelector("select")?.focus();
    });
    return item;
  }

  edit(i, item, control) {
    const key = control.dataset.archKey;
    if (!key) return;
    const arch = { ...this.archs[i] };
    arch[key] = NUMBERS.includes(key) ? number(control.value) : control.value;
    if (key === "kind" && arch.kind === "resnet" && arch.alpha === undefined) arch.alpha = 1;
    for (const twin of item.querySelectorAll(`[data-arch-key="${key}"]`)) if (twin !== control) twin.value = control.value;
    item.classList.toggle("mlp", arch.kind === "mlp");
    for (const alpha of item.querySelectorAll('[data-arch-key="alpha"]')) alpha.disabled = arch.kind === "mlp";
    item.querySelector(".arch-label").textContent = label(arch);
    item.querySelector("summary").textContent = summary(arch);
    this.archs = this.archs.map((a, j) => (j === i ? arch : a));
    this.changed(this.archs);
  }
}

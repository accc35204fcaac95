// The page's state lives in its URL (query string): a copied link reproduces the view.

export const DEFAULT_ARCHS = [
  { kind: "mlp", depth: 5 },
  { kind: "resnet", depth: 5, alpha: 1 },
  { kind: "resnet", depth: 5, alpha: 0.1 },
];

const DEFAULTS = {
  view: "shapes",
  archs: DEFAULT_ARCHS,
  kernel: "both", norm: true,                         // kernel shapes
  n: 6, target: "paper", values: "", sweep: "alpha",  // interpolation and mu
  bwidth: 512, dim: 2,                                // bounds
  width: 256, ninit: 4, steps: 1000, optimizer: "gd", parametrization: "ntk", lr: "auto", tarch: 2,  // training
  experiment: "", scale: "quick", overrides: "{}",    // experiments
};

function decode(key, text) {
  const fallback = DEFAULTS[key];
  if (key === "archs") {
    try {
      const value = JSON.parse(text);
      return Array.isArray(value) && value.length ? value : fallback;
    } catch {
      return fallback;
    }
  }
  if (typeof fallback === "boolean") return text === "1";
  if (typeof fallback === "number" && text.trim() !== "" && Number.isFinite(Number(text))) return Number(text);
  return text;
}

function encode(key, value) {
  if (key === "archs") return JSON.stringify(value);
  if (typeof value === "boolean") return value ? "1" : "0";
  return String(value);
}

/** The state read from the URL, defaults filled in. */
export function load() {
  const query = new URLSearchParams(location.search);
  const state = structuredClone(DEFAULTS);
  for (const key of Object.keys(DEFAULTS)) if (query.has(key)) state[key] = decode(key, query.get(key));
  return state;
}

/** Write the state to the URL (values equal to the defaults are left out). */
export function save(state) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) {
    if (key in DEFAULTS && encode(key, value) !== encode(key, DEFAULTS[key])) query.set(key, encode(key, value));
  }
  const search = query.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

/** A control's value in the state's type. */
export function coerce(key, value) {
  const fallback = DEFAULTS[key];
  if (typeof fallback === "number" && String(value).trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  return value;
}

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
  sn: 24, starget: "paper", svalues: "", sgrid: 2048, smeasure: "curvature",  // interpolation on S^2
  bwidth: 512, dim: 2,                                // bounds
  sdim: 3, kmax: 64, skernel: "ntk",                  // spectra on the sphere
  width: 256, ninit: 4, steps: 1000, optimizer: "gd", parametrization: "ntk", lr: "auto", tarch: 2,  // training
  experiment: "", scale: "quick", overrides: "{}",    // experiments
  question: "learning-curves",                        // questions
};

/** A value of the link as the notice quotes it: JSON, cut short. */
function quoted(value) {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

/** The value of `key` read from the link's `text`, or {problem} when the link's value cannot be used:
 * numbers must be finite (an index a whole number >= 0), switches 0 or 1, a choice one of `choices`. */
function decode(key, text, choices) {
  const fallback = DEFAULTS[key];
  if (key === "archs") {
    try {
      const value = JSON.parse(text);
      if (Array.isArray(value) && value.length) return value;
    } catch {
      // the problem below
    }
    return { problem: `archs must be a non-empty JSON list of architectures, got ${quoted(text)}` };
  }
  if (key in choices) {
    return choices[key].includes(text) ? text : { problem: `${key} must be one of ${choices[key].join(", ")}, got ${quoted(text)}` };
  }
  if (typeof fallback === "boolean") return text === "1" || text === "0" ? text === "1" : { problem: `${key} must be 0 or 1, got ${quoted(text)}` };
  if (typeof fallback === "number") {
    const number = text.trim() === "" ? NaN : Number(text);
    if (key === "tarch" ? Number.isInteger(number) && number >= 0 : Number.isFinite(number)) return number;
    return { problem: `${key} must be ${key === "tarch" ? "an index (0, 1, ...)" : "a number"}, got ${quoted(text)}` };
  }
  return text;
}

/** What is wrong with `value` as an instance of `schema`, a flat object schema as the API's OpenAPI
 * document states it (properties with type, enum, minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum; required; additionalProperties false). An empty list: nothing. */
function schemaProblems(value, schema) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return [`must be an object, got ${quoted(value)}`];
  const problems = (schema.required ?? []).filter((key) => !(key in value)).map((key) => `${key} is missing`);
  for (const [key, item] of Object.entries(value)) {
    const rule = schema.properties?.[key];
    const got = `got ${quoted(item)}`;
    if (!rule) problems.push(`${key} is not a field of an architecture (${got})`);
    else if (rule.enum && !rule.enum.includes(item)) problems.push(`${key} must be one of ${rule.enum.join(", ")}, ${got}`);
    else if (rule.type === "integer" && !Number.isInteger(item)) problems.push(`${key} must be a whole number, ${got}`);
    else if (rule.type === "number" && !(typeof item === "number" && Number.isFinite(item))) problems.push(`${key} must be a number, ${got}`);
    else if (rule.type === "string" && typeof item !== "string") problems.push(`${key} must be a string, ${got}`);
    else if (typeof item === "number") {
      const limits = [["minimum", ">=", item >= rule.minimum], ["maximum", "<=", item <= rule.maximum],
        ["exclusiveMinimum", ">", item > rule.exclusiveMinimum], ["exclusiveMaximum", "<", item < rule.exclusiveMaximum]];
      for (const [limit, sign, within] of limits) if (limit in rule && !within) problems.push(`${key} must be ${sign} ${rule[limit]}, ${got}`);
    }
  }
  return problems;
}

/** The link's architectures that are instances of `schema` (the API's ArchitectureSpec; null when
 * it could not be read: then none is used), the defaults when none is; and what was left out. */
export function checkArchs(archs, schema) {
  if (!schema) {
    const same = JSON.stringify(archs) === JSON.stringify(DEFAULT_ARCHS);
    return { archs: structuredClone(DEFAULT_ARCHS), dropped: same ? [] : ["the architectures (the API's schema, which they must follow, did not load)"] };
  }
  const dropped = [];
  const valid = archs.filter((arch, i) => {
    const problems = schemaProblems(arch, schema);
    if (problems.length) dropped.push(`architecture ${i + 1}: ${problems.join("; ")}`);
    return !problems.length;
  });
  return { archs: valid.length ? valid : structuredClone(DEFAULT_ARCHS), dropped };
}

function encode(key, value) {
  if (key === "archs") return JSON.stringify(value);
  if (typeof value === "boolean") return value ? "1" : "0";
  return String(value);
}

/** The state read from the URL, defaults filled in; `choices` lists the values that the keys bound to a
 * choice (a select, the tabs) may take. Returns {state, dropped}: what of the link was left out, and
 * why (its architectures are not yet checked: `checkArchs`). */
export function load(choices) {
  const query = new URLSearchParams(location.search);
  const state = structuredClone(DEFAULTS);
  const dropped = [];
  for (const key of Object.keys(DEFAULTS)) {
    if (!query.has(key)) continue;
    const value = decode(key, query.get(key), choices);
    if (value?.problem) dropped.push(value.problem);
    else state[key] = value;
  }
  return { state, dropped };
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

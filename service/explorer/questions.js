// The questions of issue 23, one spec each: the experiment that answers it (POST /v1/experiments/{name},
// quick scale), the declared parameters offered as controls, lighter defaults for a quick answer, how
// its result arrays become panels and traces (labelled.js), and a caption stating what the figure
// shows. A question whose experiment this service does not list says so instead of drawing.

const upper = (text) => String(text).toUpperCase();
const fixed = (value) => (Number.isFinite(value) ? Number(value.toPrecision(3)) : value);

/** The smoothness measures of smoothness-generalization: a column of its per-network tables each. */
const MEASURES = {
  max_gradient: "max ||df/dx|| over test points", mu: "mu (curvature; smaller = smoother)", rkhs: "RKHS ratio (larger = smoother)",
  jacobian_bound: "the paper's Jacobian bound B", margin_bound: "the spectrally-normalised margin bound",
};
const TASKS = { digits: "digits (vectors on S^63)", images: "digit images (conv kernels)", sphere: "the sphere" };

/** Powers of two from 4 to 1024: the N of a learning curve that runs in seconds. */
const POWERS = Array.from({ length: 9 }, (_, i) => 4 * 2 ** i);

export const QUESTIONS = [
  {
    id: "learning-curves",
    experiment: "learning-curves",
    question: "How fast does the test error fall with the number of training points N, and does the kernel's spectrum alone predict it?",
    controls: { alphas: "ResNet alphas", kernels: "Kernels", n_trains: "N", sphere_dims: "Dimensions d (S^(d−1))", depth: "Depth L", draws: "Draws" },
    defaults: { n_trains: POWERS, sphere_dims: [3], draws: 2, n_test: 500, k_max: 128 },
    dims: { kernel: "kernels", d: "sphere_dims", network: "curves", N: "n_trains" },
    series: {
      measured: { array: "measured_{kernel}", axes: ["d", "network", "N"], mode: "markers",
        // the standard error of the mean over the training sets (as the server's figure draws it)
        error: (get) => get("measured_std_{kernel}").map((std, i) => std / Math.sqrt(get("fits_{kernel}")[i])) },
      theory: { array: "theory_{kernel}", axes: ["d", "network", "N"], mode: "lines" },
    },
    panels: ["kernel", "d"],
    panelTitle: ({ kernel, d }) => `${upper(kernel)} regression on S^${d - 1} (d = ${d})`,
    x: { dim: "N", title: "training points N", type: "log" },
    y: { title: () => "test error E (f − f*)²", type: "log" },
    colour: "network",
    name: ({ network, series }) => `${network} ${series}`,
    caption(result) {
      const p = result.labels.parameters;
      const key = "median |measured / theory - 1|";  // a column of the result's agreement table
      const rows = [...(result.tables?.agreement ?? [])].sort((a, b) => a[key] - b[key]);
      const say = (row) => `${fixed(row[key])} (${row.network}, ${upper(row.kernel)}, d = ${row.d})`;
      const agreement = rows.length ? ` Median |measured / theory − 1| over N: from ${say(rows[0])} to ${say(rows.at(-1))}.` : "";
      return `Markers: the measured test error of kernel regression (ridge ${fixed(p.ridge)}) on ${p.n_test} fresh points, the mean over the training sets of ${p.draws} draws (bars: its standard error). Lines: the error predicted from the kernel's eigenvalues on the sphere alone (Bordelon, Canatar & Pehlevan 2020). Inputs uniform on S^(d−1); target: harmonics of degrees ${p.target_degrees.join(", ")} with powers ${p.target_powers.join(", ")}, label noise σ = ${p.noise}; networks of depth L = ${p.depth}, ${p.activation}.${agreement}`;
    },
  },
  {
    id: "nngp-vs-ntk",
    experiment: "nngp-vs-ntk",
    question: "Is the NNGP's interpolant smoother than the NTK's, for the MLP and for ResNets over alpha and depth?",
    controls: { depths: "Depths L", alphas: "ResNet alphas", n_trains: "Samples m on the circle", sphere_dims: "Spheres d (S^(d−1))", n_points: "Samples on each sphere" },
    defaults: { sphere_dims: [3], n_points: 64, sphere_grid: 2048 },
    dims: { domain: "domains", L: "depths", network: "curves", kernel: "kernels" },
    series: {
      mu: { array: "mu_curvature", axes: ["domain", "L", "network", "kernel"] },
      "RKHS ratio": { array: "mu_rkhs", axes: ["domain", "L", "network", "kernel"] },
    },
    panels: ["domain", "series"],
    panelTitle: ({ domain, series }) => `${domain}: ${series === "mu" ? "mu (smaller = smoother)" : "RKHS ratio (larger = smoother)"}`,
    x: { dim: "network", title: "network (α: a ResNet's alpha)", type: "category", label: (network) => network.replace(/^ResNet alpha=/, "α = ") },
    y: { title: ({ domain, series }) => (series !== "mu" ? "RKHS ratio" : domain.startsWith("circle") ? "mu (eq. 22)" : "mu = ||Δf|| / ||f||"), type: "log" },
    colour: "L",
    style: { kernel: { ntk: { line: { dash: "solid" }, marker: { symbol: "circle" } }, nngp: { line: { dash: "dash" }, marker: { symbol: "square" } } } },
    name: ({ kernel, L }) => `${upper(kernel)}, L = ${L}`,
    caption(result) {
      const { mu_curvature: mu, mu_rkhs: rkhs, labels } = result;
      const [ntk, nngp] = ["ntk", "nngp"].map((k) => labels.kernels.indexOf(k));
      const below = (a, b) => Number.isFinite(a) && Number.isFinite(b) && a < b;  // null: not finite (a gap)
      const counts = { cases: 0, mu: 0, rkhs: 0 };
      mu.forEach((domain, i) => domain.forEach((depth, j) => depth.forEach((pair, c) => {
        counts.cases += 1;
        if (below(pair[nngp], pair[ntk])) counts.mu += 1;
        if (below(rkhs[i][j][c][ntk], rkhs[i][j][c][nngp])) counts.rkhs += 1;
      })));
      const p = labels.parameters;
      return `mu (eq. 22 on the circle, ||Δf|| / ||f|| on the spheres; smaller = smoother) and the RKHS ratio (larger = smoother) of the NTK (solid, circles) and NNGP (dashed, squares) interpolants of the same samples, one colour per depth L. On the circle: the paper's m equispaced samples of 0.5 cos b + sin 4b; on S^(d−1): ${p.n_points} random samples of 0.5 x₁ + P_${p.target_degree}(x₂) + ${p.kink} |x₃|. The NNGP's interpolant is the smoother in ${counts.mu} of ${counts.cases} (domain, depth, network) cases by mu, in ${counts.rkhs} of ${counts.cases} by the RKHS ratio.`;
    },
  },
  {
    id: "smoothness-generalization",
    experiment: "smoothness-generalization",
    question: "Does smoothness predict generalisation: do the smoother networks have the lower test error?",
    controls: { depths: "Depths L", alphas: "ResNet alphas", kernels: "Kernels", splits: "Splits", net_depths: "Trained networks: depths", steps: "Training steps" },
    defaults: { depths: [2, 5], alphas: [0.1, 1.0], splits: 1, gradient_points: 50, conv_depths: [2], conv_alphas: [1.0], conv_n_train: 100, conv_n_test: 100, net_alphas: [1.0], steps: 50, bootstrap: 200 },
    display: { measure: { label: "Smoothness measure (x)", choices: MEASURES } },
    table: { name: /^(?<task>digits|images|sphere)_(?<predictor>ntk|nngp|net)$/, x: "{measure}", y: "test_error", group: "family", text: "network" },
    x: { title: ({ measure }) => MEASURES[measure], type: "auto" },
    y: { title: ({ task }) => (task === "sphere" ? "test error (relative squared)" : "test error (misclassified share)"), type: "auto" },
    panelTitle({ task, predictor, measure }, result) {
      const row = (result.tables.spearman ?? []).find((r) => r.task === task && r.predictor === predictor && r.measure === measure
        && r.against === "test error" && r.family === "all");
      const rho = Number.isFinite(row?.rho) ? `Spearman ρ = ${fixed(row.rho)} [${fixed(row.low)}, ${fixed(row.high)}]` : "Spearman ρ undefined";
      return `${TASKS[task] ?? task}, ${result.labels.predictors?.[predictor] ?? predictor}: ${rho}`;
    },
    caption(result, { measure }) {
      const { splits, n_init: inits, dataset, width } = result.labels;
      const smoother = measure === "rkhs" ? -1 : 1;  // the sign of rho were the smoother networks the better
      const rows = (result.tables.spearman ?? []).filter((r) => r.measure === measure && r.against === "test error" && r.family === "all"
        && Number.isFinite(r.rho));
      const agree = rows.filter((r) => Math.sign(r.rho) === smoother).length;
      return `Each point: one network, its test error against ${MEASURES[measure]} (means over ${splits} split${splits === 1 ? "" : "s"}${inits > 1 ? ` and ${inits} initialisations` : ""}), one colour per family. Panels: the task (${dataset} as vectors; the same digits as 8×8 images for the conv kernels; spherical harmonics plus noise on the sphere) and the predictor (NTK or NNGP regression, trained networks of width ${width}); a panel appears where its predictor has the measure. Titles: Spearman's ρ across the panel's networks, with its bootstrap interval. Were the smoother networks the better, ρ would be ${smoother > 0 ? "positive" : "negative (a larger RKHS ratio is smoother)"}: it is in ${agree} of the ${rows.length} panels where ρ is defined.`;
    },
  },
];

// The public API (/v1/...), as any client uses it: JSON bodies, problem+json errors,
// jobs followed by their Server-Sent Events, cancellation.

/** An RFC 9457 problem from the API (or the job's failure); `errors` lists {field, message}. */
export class Problem extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request failed");
    this.problem = problem;
    this.status = problem.status;
    this.errors = problem.errors || [];
  }
}

const JSON_HEADERS = { "Content-Type": "application/json", Accept: "application/json" };
let running = 0;
const waiting = [];

/** At most 4 requests at once: the browser keeps 6 connections per host, and event streams hold theirs. */
async function slot(work) {
  if (running >= 4) await new Promise((resolve) => waiting.push(resolve));
  running += 1;
  try {
    return await work();
  } finally {
    running -= 1;
    waiting.shift()?.();
  }
}

async function parse(response) {
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (response.status >= 400) {
    throw new Problem(typeof body === "object" ? body : { status: response.status, title: response.statusText, detail: body });
  }
  return body;
}

/** GET a JSON document. */
export async function get(path, { signal } = {}) {
  return parse(await fetch(path, { headers: { Accept: "application/json" }, signal }));
}

/** POST a JSON body (state-changing routes take JSON, even an empty one). */
export async function post(path, body = {}, { signal, headers = {} } = {}) {
  const response = await fetch(path, { method: "POST", headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body), signal });
  return { status: response.status, body: await parse(response) };
}

/** Follow a job's events until it ends; onProgress(status) for each. Resolves with the final status. */
export function follow(id, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(`/v1/jobs/${id}/events`);
    const close = () => source.close();
    signal?.addEventListener("abort", () => { close(); reject(new DOMException("stale", "AbortError")); });
    source.addEventListener("progress", (event) => onProgress?.(JSON.parse(event.data)));
    source.addEventListener("done", (event) => { close(); resolve(JSON.parse(event.data)); });
    source.addEventListener("deleted", () => { close(); reject(new Problem({ status: 404, title: "Job deleted", detail: `job ${id} was deleted` })); });
    source.onerror = () => {  // the stream broke: ask for the status, and follow again while the job runs
      close();
      get(`/v1/jobs/${id}`, { signal })
        .then((status) => (["queued", "running"].includes(status.status) ? follow(id, { onProgress, signal }) : status))
        .then(resolve, reject);
    };
  });
}

/** Run `operation` to its end: its result (JSON), with progress from the job's events.
 * onJob(id) tells the caller the job id (for a cancel button). Throws Problem on failure. */
export async function run(operation, body, { onProgress, onJob, signal } = {}) {
  return slot(async () => {
    const answer = await post(`/v1/${operation}`, body, { signal, headers: { Prefer: "wait=1" } });
    if (answer.status !== 202) return answer.body;
    onJob?.(answer.body.id);
    return finish(answer.body.id, { onProgress, signal });
  });
}

/** Start (or find) the job for `operation` without waiting; its id (a done job's is its ETag). */
export async function submit(operation, body, { signal } = {}) {
  const response = await fetch(`/v1/${operation}`, {
    method: "POST", headers: { ...JSON_HEADERS, Prefer: "respond-async" }, body: JSON.stringify(body), signal,
  });
  if (response.status === 202) return (await parse(response)).id;
  await parse(response);
  return response.headers.get("etag").replaceAll('"', "");
}

/** Wait for a job to end (progress from its events); its final status, with the result's manifest.
 * Throws Problem when it failed or was canceled. */
export async function settle(id, { onProgress, signal } = {}) {
  let status = await get(`/v1/jobs/${id}`, { signal });
  if (["queued", "running"].includes(status.status)) status = await follow(id, { onProgress, signal });
  if (status.status === "failed") throw new Problem(status.error);
  if (status.status === "canceled") throw new Problem({ status: 409, title: "Canceled", detail: `job ${id} was canceled` });
  return status;
}

/** Wait for a submitted job and fetch its result (JSON). */
export async function finish(id, { onProgress, signal } = {}) {
  await settle(id, { onProgress, signal });
  return get(`/v1/jobs/${id}/result`, { signal });
}

/** Ask the service to stop a job. */
export function cancel(id) {
  return post(`/v1/jobs/${id}:cancel`, {});
}

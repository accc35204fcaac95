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
const TOKEN = "reskernel-token";

/** Keep the API token (RESKERNEL_API_TOKEN) for this tab only; an empty one forgets it. */
export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN, token);
  else sessionStorage.removeItem(TOKEN);
}

/** fetch, with `Authorization: Bearer` when a token was given; a 401 fires "reskernel:unauthorized"
 * on window (the page then asks for a token). Every request to the API goes through here. */
export async function request(path, init = {}) {
  const headers = new Headers(init.headers);
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401) window.dispatchEvent(new CustomEvent("reskernel:unauthorized"));
  return response;
}
let running = 0;
const waiting = [];

/** At most 4 requests at once: the browser keeps 6 connections per host, and event streams hold theirs.
 * Work whose `signal` was aborted while it waited is dropped without a request. */
async function slot(work, signal) {
  if (running >= 4) await new Promise((resolve) => waiting.push(resolve));
  running += 1;
  if (signal?.aborted) {
    running -= 1;
    waiting.shift()?.();
    throw STALE();
  }
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
export async function get(path) {
  return parse(await request(path, { headers: { Accept: "application/json" } }));
}

/** POST a JSON body (state-changing routes take JSON, even an empty one). */
async function post(path, body = {}, { headers = {} } = {}) {
  const response = await request(path, { method: "POST", headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) });
  return { status: response.status, body: await parse(response) };
}

const STALE = () => new DOMException("a newer request replaced this one", "AbortError");

/** Follow a job's Server-Sent Events (read to the end of the stream, which the service closes after
 * the "done" event); onProgress(status) for each. Resolves with the final status. */
async function follow(id, { onProgress } = {}) {
  const response = await request(`/v1/jobs/${id}/events`, { headers: { Accept: "text/event-stream" } });
  if (!response.ok) await parse(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let final = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const kind = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!data) continue;
      if (kind === "deleted") throw new Problem({ status: 404, title: "Job deleted", detail: `job ${id} was deleted` });
      const status = JSON.parse(data);
      if (kind === "progress") onProgress?.(status);
      if (kind === "done") final = status;
    }
  }
  // A stream cut short (a restart, a proxy): ask for the status, and follow again while the job runs.
  final ??= await get(`/v1/jobs/${id}`);
  return ["queued", "running"].includes(final.status) ? follow(id, { onProgress }) : final;
}

/** Run `operation` to its end: its result (JSON), with progress from the job's events. Requests are
 * never aborted mid-flight (the job runs and is cached anyway); once `signal` is aborted, the answer
 * is dropped (AbortError). Throws Problem on failure. */
export async function run(operation, body, { onProgress, signal } = {}) {
  return slot(async () => {
    const answer = await post(`/v1/${operation}`, body, { headers: { Prefer: "wait=1" } });
    if (answer.status !== 202) return answer.body;
    return finish(answer.body.id, { onProgress, signal });
  }, signal);
}

/** Start (or find) the job for `operation` without waiting; its id (a done job's is its ETag). */
export async function submit(operation, body) {
  const response = await request(`/v1/${operation}`, {
    method: "POST", headers: { ...JSON_HEADERS, Prefer: "respond-async" }, body: JSON.stringify(body),
  });
  if (response.status === 202) return (await parse(response)).id;
  await parse(response);
  return response.headers.get("etag").replaceAll('"', "");
}

/** Wait for a job to end (progress from its events); its final status, with the result's manifest.
 * Throws Problem when it failed or was canceled. */
export async function settle(id, { onProgress } = {}) {
  let status = await get(`/v1/jobs/${id}`);
  if (["queued", "running"].includes(status.status)) status = await follow(id, { onProgress });
  if (status.status === "failed") throw new Problem(status.error);
  if (status.status === "canceled") throw new Problem({ status: 409, title: "Canceled", detail: `job ${id} was canceled` });
  return status;
}

/** Wait for a submitted job and fetch its result (JSON). */
export async function finish(id, { onProgress, signal } = {}) {
  await settle(id, { onProgress });
  if (signal?.aborted) throw STALE();
  return get(`/v1/jobs/${id}/result`);
}

/** Ask the service to stop a job. */
export function cancel(id) {
  return post(`/v1/jobs/${id}:cancel`, {});
}

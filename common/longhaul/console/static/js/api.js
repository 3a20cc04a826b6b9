// The console's calls: every one to a service goes to the page's own origin
// (api/<service>/... locally) with `Authorization: Bearer <token>`; the token lives in
// sessionStorage (this tab only, gone when it closes).

const TOKEN_KEY = "longhaul.token";
// Where the services' APIs are, relative to the page: "api/" (the console's own forwarding,
// locally) unless the console's settings say otherwise ("/" behind the platform's ALB).
let apiBase = "api/";
let mediaProxy = false; // whether the console fetches presigned media URLs for the page

/** A presigned media URL as the page should load it: through the console's /media when
 * it offers that (same origin, which a browser's HLS playback needs), else as it is. */
export function mediaUrl(url) {
  return mediaProxy ? new URL(`media?u=${encodeURIComponent(url)}`, document.baseURI).href : url;
}

/** `path` of `service`'s API. */
export function apiUrl(service, path) {
  return `${apiBase}${encodeURIComponent(service)}${path}`;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  const trimmed = String(value || "").trim().replace(/^Bearer\s+/i, "");
  if (trimmed) sessionStorage.setItem(TOKEN_KEY, trimmed);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's claims, for display only (the services verify it; the page never does). */
export function claims() {
  const value = token();
  if (!value) return null;
  try {
    const part = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

/** The Cognito group whose members see the admin view (the services check it again). */
export const ADMIN_GROUP = "admin";

/** Whether the token says its user is in the admin group: it only decides what the page
 * offers; each admin route answers 403 to anyone else whatever the page shows. */
export function isAdmin() {
  const groups = (claims() || {})["cognito:groups"];
  return Array.isArray(groups) && groups.includes(ADMIN_GROUP);
}

export function authHeaders(extra = {}) {
  const value = token();
  return value ? { ...extra, Authorization: `Bearer ${value}` } : { ...extra };
}

/** The console's own settings: the services it forwards to, whether a dev token is offered. */
export async function consoleConfig() {
  const answer = await fetch("console/config");
  const config = await answer.json();
  if (typeof config.api_base === "string") apiBase = config.api_base;
  mediaProxy = config.media_proxy === true;
  return config;
}

/** A local dev user's token (only under the dev runner): "dev", or "admin" (dev-admin). */
export async function devToken(user = "dev") {
  const answer = await fetch(`dev-token?user=${encodeURIComponent(user)}`, { cache: "no-store" });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(body.detail || `HTTP ${answer.status}`);
  return body.token;
}

/** Call `service`'s API: { ok, status, body } where body is the parsed JSON (or null). */
export async function call(service, path, { method = "GET", params = null, body = null } = {}) {
  const query = params ? `?${new URLSearchParams(params)}` : "";
  const url = `${apiUrl(service, path)}${query}`;
  const headers = authHeaders({ Accept: "application/json" });
  if (body !== null) headers["Content-Type"] = "application/json";
  let answer;
  try {
    answer = await fetch(url, { method, headers, body: body === null ? null : JSON.stringify(body) });
  } catch (error) {
    return { ok: false, status: 0, body: { detail: `the console did not answer (${error})` } };
  }
  const parsed = await answer.json().catch(() => null);
  return { ok: answer.ok, status: answer.status, body: parsed };
}

/** What went wrong, in one line, from a problem+json body. */
export function describe(result) {
  const body = result.body || {};
  const detail = typeof body.detail === "string" ? body.detail : body.title || "";
  return `HTTP ${result.status}${detail ? `: ${detail}` : ""}`;
}

/** The job states, in the order the filters offer them. */
export const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];

/** One page of `path` (a job listing) from each of `services`, each asked with `params`;
 * with `cursors` (service -> next_cursor) the next page of each service that has one. A
 * service without the route (404) is left out. { pages: [{ service, jobs }], cursors,
 * problems }: `cursors` holds the services that have a page after this one. */
export async function pageAcross(services, path, params, cursors = null) {
  const wanted = cursors ? Object.keys(cursors) : services;
  const answers = await Promise.all(wanted.map(async (service) => {
    const asked = cursors ? { ...params, cursor: cursors[service] } : params;
    return [service, await call(service, path, { params: asked })];
  }));
  const found = { pages: [], cursors: {}, problems: [] };
  for (const [service, result] of answers) {
    if (result.status === 404) continue; // a service without jobs
    if (!result.ok) { found.problems.push(`${service}: ${describe(result)}`); continue; }
    found.pages.push({ service, jobs: result.body.jobs || [] });
    if (result.body.next_cursor) found.cursors[service] = result.body.next_cursor;
  }
  return found;
}

/** Go to the view `route` (e.g. "#/admin") with `query` changed by `change` (an empty
 * value removes its key). */
export function goWith(route, query, change) {
  const next = new URLSearchParams(query);
  for (const [key, value] of Object.entries(change)) {
    if (value) next.set(key, value); else next.delete(key);
  }
  location.hash = `${route}?${next}`;
}

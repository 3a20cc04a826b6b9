// One job: its state and progress kept live by the job's event stream (no reload), its
// message, history, error, result and outputs, and a cancel button; a training job's metric
// charts, and, once it succeeded, the card of the model it made (or used).

import { call, describe } from "./api.js";
import { bar, el, fill, stateBadge, when } from "./dom.js";
import { metricCharts } from "./charts.js";
import { modelCard, modelOf } from "./modelcard.js";
import { hasLadder, hlsPlayer } from "./player.js";
import { followJob } from "./sse.js";
import { ensureStyles } from "./styles.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const METRICS_EVERY_MS = 2000; // at most this often while the job reports progress

/** Draw `service`'s job `jobId` into `view`; the stream stops when `signal` aborts. */
export async function renderJob(view, service, jobId, signal) {
  ensureStyles();
  fill(view, el("p", { class: "muted" }, "Loading…"));
  const first = await call(service, `/jobs/${encodeURIComponent(jobId)}`);
  if (!first.ok) {
    fill(view, el("p", { class: "error", id: "job-problem" },
      first.status === 404 ? "No such job (or it is not yours)." : describe(first)),
    el("p", {}, el("a", { href: "#/" }, "Back to the jobs")));
    return;
  }
  let job = first.body;
  const history = [];
  const parts = {
    state: el("span", { id: "job-state-box" }),
    progress: el("span", { id: "job-progress" }),
    message: el("span", { id: "job-message" }),
    facts: el("dl", { id: "job-facts" }),
    cancel: el("button", { id: "cancel", class: "danger", onclick: cancel }, "Cancel job"),
    live: el("p", { class: "muted", id: "live" }),
    error: el("div", { id: "job-error" }),
    result: el("div", { id: "job-result" }),
    outputs: el("div", { id: "job-outputs" }),
    metrics: el("div", { id: "job-metrics" }),
    card: el("div", { id: "job-model" }),
    history: el("tbody", { id: "job-history" }),
  };

  async function cancel() {
    parts.cancel.disabled = true;
    const answer = await call(service, `/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" });
    if (answer.ok) { job = answer.body; draw(); }
    else { fill(parts.live, el("span", { class: "error" }, `Cancel failed: ${describe(answer)}`)); parts.cancel.disabled = false; }
  }

  // A service with metric series (training) answers GET /jobs/{id}/metrics; others 404.
  let metricsFound = true;
  let metricsAt = 0;
  let metricsAsked = 0;
  async function refreshMetrics(force = false) {
    if (!metricsFound || (!force && Date.now() - metricsAt < METRICS_EVERY_MS)) return;
    metricsAt = Date.now();
    const asked = ++metricsAsked;
    const answer = await call(service, `/jobs/${encodeURIComponent(jobId)}/metrics`);
    if (answer.status === 404 || answer.status === 405) { metricsFound = false; return; }
    const points = answer.ok && Array.isArray(answer.body?.points) ? answer.body.points : [];
    // Only the latest answer is drawn: an earlier one may arrive after it.
    if (points.length && asked === metricsAsked) {
      fill(parts.metrics, el("h2", {}, "Metrics"), metricCharts(points));
    }
  }

  async function ended() {
    await refreshMetrics(true);
    const latest = await call(service, `/jobs/${encodeURIComponent(jobId)}`);
    if (latest.ok) job = latest.body;
    if (job.state === "succeeded" && modelOf(job) && !parts.card.hasChildNodes()) {
      fill(parts.card, await modelCard(service, modelOf(job)));
    }
    if (job.state === "succeeded") {
      const outputs = await call(service, `/jobs/${encodeURIComponent(jobId)}/outputs`);
      if (outputs.ok) {
        const player = hasLadder(outputs.body) ? await hlsPlayer(service, jobId) : null;
        fill(parts.outputs, player ? [el("h2", {}, "Playback"), player] : null,
          el("h2", {}, "Outputs"), outputsView(outputs.body));
      }
    }
    draw();
  }

  function draw() {
    fill(parts.state, stateBadge(job.state, "job-state"));
    const [track, percent] = bar(job.progress, true);
    fill(parts.progress, track, el("span", { id: "job-progress-text" }, percent));
    fill(parts.message, job.message || el("span", { class: "muted" }, "—"));
    fill(parts.facts,
      fact("Owner", job.owner), fact("Created", when(job.created_at)), fact("Started", when(job.started_at)),
      fact("Finished", when(job.finished_at)), fact("Attempts failed", job.attempts), fact("Runs", job.runs),
      job.cancel_requested && !TERMINAL.has(job.state) ? fact("Cancel", "requested; the worker stops it") : null);
    parts.cancel.hidden = TERMINAL.has(job.state);
    parts.cancel.disabled = Boolean(job.cancel_requested);
    fill(parts.error, job.error ? [el("h2", {}, "Error"), el("pre", { class: "error" }, job.error)] : []);
    fill(parts.result, job.result ? [el("h2", {}, "Result"), el("pre", {}, JSON.stringify(job.result, null, 2))] : []);
    fill(parts.history, history.length ? history.map((entry) => el("tr", { class: "history-row" },
      el("td", {}, when(entry.at)), el("td", {}, entry.kind), el("td", {}, stateBadge(entry.state)),
      el("td", {}, `${Math.round((Number(entry.progress) || 0) * 100)}%`), el("td", {}, entry.message || "")))
      : el("tr", {}, el("td", { colspan: "5", class: "muted" }, "Nothing yet.")));
    view.dataset.state = job.state;
  }

  fill(view,
    el("p", {}, el("a", { href: "#/" }, "← Jobs")),
    el("h1", {}, `${service} · ${job.type} · `, el("code", { id: "job-id" }, job.id)),
    el("div", { class: "filters" }, parts.state, parts.progress, parts.cancel),
    el("p", {}, el("span", { class: "muted" }, "Message: "), parts.message),
    parts.live, parts.error, parts.metrics, parts.card, parts.outputs, parts.result,
    parts.facts,
    el("h2", {}, "History"),
    el("table", {}, el("thead", {}, el("tr", {}, ["At", "Kind", "State", "Progress", "Message"].map((h) => el("th", {}, h)))),
      parts.history),
    el("h2", {}, "Payload"), el("pre", { id: "job-payload" }, JSON.stringify(job.payload, null, 2)));
  draw();

  await followJob(service, jobId, {
    signal,
    onTrouble: (text) => fill(parts.live, text ? el("span", { class: "error" }, text) : "Live"),
    onEvent: (kind, event) => {
      history.push({ ...event, kind });
      job = { ...job, state: event.state, progress: event.progress, message: event.message ?? job.message };
      draw();
      if (kind === "state" && TERMINAL.has(event.state)) ended();
      else if (kind === "progress") refreshMetrics();
    },
  });
  if (!signal.aborted) fill(parts.live, TERMINAL.has(job.state) ? "Ended" : parts.live.textContent);
}

function fact(name, value) {
  return [el("dt", {}, name), el("dd", {}, value === null || value === undefined ? "—" : String(value))];
}

/** A service's outputs document, its plain values only (the result above holds the rest):
 * http(s) URLs as links, anything else as text. */
function outputsView(outputs) {
  const entries = outputs && typeof outputs === "object" ? Object.entries(outputs) : [];
  const plain = entries.filter(([, value]) => ["string", "number", "boolean"].includes(typeof value));
  const show = (value) => (typeof value === "string" && /^https?:\/\//i.test(value)
    ? el("a", { href: value, rel: "noopener noreferrer", target: "_blank" }, value)
    : el("code", {}, String(value)));
  return el("dl", { id: "outputs-list" }, plain.map(([key, value]) => [el("dt", {}, key), el("dd", {}, show(value))]));
}

// The admin view's dead-letter queues: for each service, GET /admin/dlq (its count and
// first messages, left in place) and a Redrive button that, once confirmed, posts
// /admin/dlq/redrive (messages back to the work queue, failed jobs reset) again and again:
// each call is bounded by the service (500 messages or 20 s) and says how many are left.
// The button stays disabled and the progress shows until the calls end, then it looks at
// the DLQ again.

import { call, describe } from "./api.js";
import { el, fill, stateBadge, when } from "./dom.js";

const SHOWN = 20; // messages listed per DLQ

/** Draw a section per service's DLQ into `node`; a service without one (404) is left out. */
export async function renderDeadLetters(node, services) {
  const sections = await Promise.all(services.map(async (service) => {
    const section = el("section", { class: "dlq", "data-service": service, id: `dlq-${service}` });
    const present = await drawSection(section, service);
    return present ? section : null;
  }));
  const shown = sections.filter(Boolean);
  fill(node, shown.length ? shown : el("p", { class: "muted" }, "No service has a dead-letter queue."));
  node.dataset.loaded = "true";
}

/** Look at `service`'s DLQ and draw it into `section`; false when it has none. */
async function drawSection(section, service, note = null) {
  section.dataset.loaded = "false";
  const result = await call(service, "/admin/dlq", { params: { limit: String(SHOWN) } });
  if (result.status === 404) return false;
  if (!result.ok) {
    fill(section, el("h2", {}, service), el("p", { class: "error" }, `${service}: ${describe(result)}`));
    section.dataset.loaded = "true";
    return true;
  }
  const { count, messages, limited } = result.body;
  const redrive = el("button", {
    class: "danger",
    id: `redrive-${service}`,
    disabled: count === 0,
    onclick: async () => {
      if (!window.confirm(`Move ${count} message(s) of ${service}'s dead-letter queue back to its work queue? Failed jobs are queued again.`)) return;
      redrive.disabled = true;
      const { ok, line } = await redriveAll(service, count, (text) => fill(outcome, text));
      await drawSection(section, service, el("p", { class: ok ? "muted" : "error", id: `redrive-result-${service}` }, line));
    },
  }, "Redrive");
  const outcome = el("span", { class: "muted", id: `redrive-progress-${service}` });
  fill(section,
    el("h2", {}, `${service}: `, el("span", { class: "dlq-count", id: `dlq-count-${service}` }, String(count)), " message(s)"),
    el("div", { class: "filters" }, redrive, " ", outcome),
    note,
    messages.length
      ? el("table", {},
          el("thead", {}, el("tr", {}, ["Job", "Type", "Owner", "State", "Receives", "Reason", "Dead-lettered"].map((h) => el("th", {}, h)))),
          el("tbody", {}, messages.map(messageRow)))
      : el("p", { class: "muted" }, "The dead-letter queue is empty."),
    limited ? el("p", { class: "muted" }, `The first ${messages.length} shown.`) : null);
  section.dataset.loaded = "true";
  return true;
}

/** Post /admin/dlq/redrive until the DLQ is empty, telling `progress` after each call. It
 * also stops after a call that moved nothing (what is left is held by another reader, or
 * delayed) and once it has moved the `confirmed` count: a job that fails again at once
 * cannot keep it going, and what arrived meanwhile is left for the next Redrive. */
async function redriveAll(service, confirmed, progress) {
  const sum = { calls: 0, moved: 0, reset: 0, notFailed: 0, other: 0, kept: 0, left: confirmed };
  progress(`Redriving… 0 moved, about ${confirmed} left`);
  for (;;) {
    const done = await call(service, "/admin/dlq/redrive", { method: "POST" });
    if (!done.ok) {
      return { ok: false, line: `Redrive failed after ${sum.moved} message(s) moved: ${describe(done)}` };
    }
    const body = done.body;
    sum.calls += 1;
    sum.moved += body.moved;
    sum.reset += body.jobs_reset.length;
    sum.notFailed += body.not_failed.length;
    sum.other += body.other;
    sum.kept += body.kept.length;
    sum.left = body.left;
    progress(`Redriving… ${sum.moved} moved, about ${sum.left} left`);
    if (body.left === 0 || body.moved === 0 || sum.moved >= confirmed) break;
  }
  progress("");
  let line = `Redrive: moved ${sum.moved} message(s) in ${sum.calls} call(s); ${sum.reset} job(s) reset; `
    + `${sum.notFailed} job(s) not failed (moved, not reset); ${sum.other} other message(s) moved`;
  if (sum.kept) line += `; ${sum.kept} job(s) failed again during the redrive, left in the DLQ`;
  if (sum.left) line += `; ${sum.left} message(s) left in the DLQ: Redrive again to move them`;
  return { ok: true, line };
}

function messageRow(message) {
  return el("tr", { class: "dlq-message", "data-job-id": message.job_id || "", "data-message-id": message.message_id },
    el("td", { class: "id" }, message.job_id || "(not a job's message)"),
    el("td", {}, message.type || "—"),
    el("td", {}, message.owner || "—"),
    el("td", {}, message.state ? stateBadge(message.state) : "—"),
    el("td", {}, String(message.receives)),
    el("td", {}, message.reason || (message.body ? JSON.stringify(message.body).slice(0, 120) : "")),
    el("td", {}, when(message.sent_at)));
}

// The admin view's dead-letter queues: for each service, GET /admin/dlq (its count and
// first messages, left in place) and a Redrive button that, once confirmed, posts
// /admin/dlq/redrive (every message back to the work queue, failed jobs reset) and then
// looks at the DLQ again.

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
      fill(outcome, "Redriving…");
      const done = await call(service, "/admin/dlq/redrive", { method: "POST" });
      const line = done.ok ? `Redrive: ${done.body.summary}` : `Redrive failed: ${describe(done)}`;
      await drawSection(section, service, el("p", { class: done.ok ? "muted" : "error", id: `redrive-result-${service}` }, line));
    },
  }, "Redrive");
  const outcome = el("span", { class: "muted" });
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

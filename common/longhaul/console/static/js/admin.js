// The admin view (#/admin, for the admin group): every owner's jobs on every service
// (GET /admin/jobs on each, the most recent state change first, with an owner column and
// state, type and owner filters, all asked of the services; "More" follows each service's
// next_cursor), then each service's dead-letter queue with its redrive (admindlq.js).

import { call, describe } from "./api.js";
import { renderDeadLetters } from "./admindlq.js";
import { bar, el, fill, stateBadge, when } from "./dom.js";

const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 25;

/** Draw the admin view into `view` for `services`, with the filters in `query`. */
export async function renderAdmin(view, services, query) {
  const state = STATES.includes(query.get("state")) ? query.get("state") : "";
  const type = (query.get("type") || "").trim();
  const owner = (query.get("owner") || "").trim();
  const listing = { jobs: [], cursors: {}, problems: [] };
  const rows = el("tbody", { id: "admin-job-rows" });
  const notes = el("div", { id: "admin-notes" });
  const more = el("button", { id: "admin-more", hidden: true, onclick: () => load(true) }, "More");
  const stateSelect = el("select", { id: "admin-state-filter", onchange: () => go({ state: stateSelect.value }) },
    el("option", { value: "" }, "all states"),
    STATES.map((s) => el("option", { value: s, selected: s === state ? "selected" : null }, s)));
  const typeInput = el("input", { id: "admin-type-filter", value: type, placeholder: "any type", size: "12" });
  const ownerInput = el("input", { id: "admin-owner-filter", value: owner, placeholder: "any owner (sub)", size: "24" });
  const dlqs = el("div", { id: "dlqs" });

  function go(change) {
    const next = new URLSearchParams(query);
    for (const [key, value] of Object.entries(change)) {
      if (value) next.set(key, value); else next.delete(key);
    }
    location.hash = `#/admin?${next}`;
  }

  async function load(nextPage) {
    const wanted = nextPage ? Object.keys(listing.cursors) : services;
    more.disabled = true;
    const pages = await Promise.all(wanted.map(async (service) => {
      const params = { limit: String(PAGE) };
      if (state) params.state = state;
      if (type) params.type = type;
      if (owner) params.owner = owner;
      if (nextPage) params.cursor = listing.cursors[service];
      return [service, await call(service, "/admin/jobs", { params })];
    }));
    listing.cursors = {};
    for (const [service, result] of pages) {
      if (result.status === 404) continue; // a service without jobs
      if (!result.ok) { listing.problems.push(`${service}: ${describe(result)}`); continue; }
      for (const job of result.body.jobs || []) listing.jobs.push({ service, job });
      if (result.body.next_cursor) listing.cursors[service] = result.body.next_cursor;
    }
    listing.jobs.sort((a, b) => String(b.job.updated_at).localeCompare(String(a.job.updated_at)));
    draw();
  }

  function draw() {
    fill(rows, listing.jobs.length ? listing.jobs.map(row)
      : el("tr", {}, el("td", { colspan: "8", class: "muted", id: "admin-no-jobs" }, "No jobs.")));
    fill(notes, listing.problems.map((text) => el("p", { class: "error" }, text)));
    more.hidden = Object.keys(listing.cursors).length === 0;
    more.disabled = false;
    view.dataset.jobsLoaded = "true";
  }

  fill(view,
    el("h1", {}, "Admin: every owner's jobs"),
    el("form", { class: "filters", id: "admin-filters", onsubmit: (event) => {
      event.preventDefault();
      go({ type: typeInput.value.trim(), owner: ownerInput.value.trim() });
    } },
      el("label", {}, "State ", stateSelect),
      el("label", {}, "Type ", typeInput),
      el("label", {}, "Owner ", ownerInput),
      el("button", { id: "admin-apply", type: "submit" }, "Apply"),
      el("button", { id: "admin-refresh", type: "button", onclick: () => renderAdmin(view, services, query) }, "Refresh")),
    notes,
    el("table", {},
      el("thead", {}, el("tr", {}, ["Service", "Owner", "Type", "State", "Progress", "Message", "Updated", "Job"].map((h) => el("th", {}, h)))),
      rows),
    more,
    el("h1", {}, "Dead-letter queues"),
    dlqs);
  view.dataset.jobsLoaded = "false";
  await Promise.all([load(false), renderDeadLetters(dlqs, services)]);
}

function row({ service, job }) {
  return el("tr", { class: "admin-job-row", "data-job-id": job.id, "data-owner": job.owner, "data-state": job.state },
    el("td", {}, service),
    el("td", { class: "owner" }, job.owner),
    el("td", {}, job.type),
    el("td", {}, stateBadge(job.state)),
    el("td", {}, bar(job.progress)),
    el("td", {}, job.error || job.message || ""),
    el("td", {}, when(job.updated_at)),
    el("td", { class: "id" }, job.id));
}

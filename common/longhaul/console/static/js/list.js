// The jobs list: one page of the caller's jobs from every service (GET /jobs on each),
// newest first, filtered by state (asked of the services) and type (filtered here: the
// services' list route takes a state, not a type), with "more" for the next pages.

import { call, describe } from "./api.js";
import { bar, el, fill, stateBadge, when } from "./dom.js";

const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 25;

/** Draw the list into `view` for `services`, with the filters in `query`. */
export async function renderList(view, services, query) {
  const state = STATES.includes(query.get("state")) ? query.get("state") : "";
  const type = query.get("type") || "";
  const listing = { jobs: [], cursors: {}, problems: [] };
  const rows = el("tbody", { id: "job-rows" });
  const notes = el("div", { id: "list-notes" });
  const more = el("button", { id: "more", hidden: true, onclick: () => load(true) }, "More");
  const typeSelect = el("select", { id: "type-filter", onchange: () => go({ type: typeSelect.value }) },
    el("option", { value: "" }, "all types"));
  const stateSelect = el("select", { id: "state-filter", onchange: () => go({ state: stateSelect.value }) },
    el("option", { value: "" }, "all states"),
    STATES.map((s) => el("option", { value: s, selected: s === state ? "selected" : null }, s)));

  function go(change) {
    const next = new URLSearchParams(query);
    for (const [key, value] of Object.entries(change)) {
      if (value) next.set(key, value); else next.delete(key);
    }
    location.hash = `#/?${next}`;
  }

  async function load(nextPage) {
    const wanted = nextPage ? Object.keys(listing.cursors) : services;
    if (!nextPage) listing.cursors = {};
    more.disabled = true;
    const pages = await Promise.all(wanted.map(async (service) => {
      const params = { limit: String(PAGE) };
      if (state) params.state = state;
      if (nextPage) params.cursor = listing.cursors[service];
      return [service, await call(service, "/jobs", { params })];
    }));
    listing.cursors = {};
    for (const [service, result] of pages) {
      if (result.status === 404) continue; // a service without jobs
      if (!result.ok) { listing.problems.push(`${service}: ${describe(result)}`); continue; }
      for (const job of result.body.jobs || []) listing.jobs.push({ service, job });
      if (result.body.next_cursor) listing.cursors[service] = result.body.next_cursor;
    }
    listing.jobs.sort((a, b) => String(b.job.created_at).localeCompare(String(a.job.created_at)));
    draw();
  }

  function draw() {
    const types = [...new Set(listing.jobs.map((item) => item.job.type))].sort();
    if (type && !types.includes(type)) types.push(type);
    fill(typeSelect, el("option", { value: "" }, "all types"),
      types.map((t) => el("option", { value: t, selected: t === type ? "selected" : null }, t)));
    const shown = listing.jobs.filter((item) => !type || item.job.type === type);
    fill(rows, shown.length ? shown.map(row)
      : el("tr", {}, el("td", { colspan: "7", class: "muted", id: "no-jobs" }, "No jobs.")));
    fill(notes, listing.problems.map((text) => el("p", { class: "error" }, text)));
    more.hidden = Object.keys(listing.cursors).length === 0;
    more.disabled = false;
    view.dataset.loaded = "true";
  }

  fill(view,
    el("h1", {}, "Jobs"),
    el("div", { class: "filters" },
      el("label", {}, "State ", stateSelect),
      el("label", {}, "Type ", typeSelect),
      el("button", { id: "refresh", onclick: () => renderList(view, services, query) }, "Refresh")),
    notes,
    el("table", {},
      el("thead", {}, el("tr", {}, ["Service", "Type", "State", "Progress", "Message", "Created", "Job"].map((h) => el("th", {}, h)))),
      rows),
    more);
  view.dataset.loaded = "false";
  await load(false);
}

function row({ service, job }) {
  const href = `#/jobs/${encodeURIComponent(service)}/${encodeURIComponent(job.id)}`;
  return el("tr", { class: "job-row", "data-job-id": job.id, "data-state": job.state },
    el("td", {}, service),
    el("td", {}, job.type),
    el("td", {}, stateBadge(job.state)),
    el("td", {}, bar(job.progress)),
    el("td", {}, job.message || ""),
    el("td", {}, when(job.created_at)),
    el("td", { class: "id" }, el("a", { href }, job.id)));
}

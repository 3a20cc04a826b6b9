// The jobs list: one page of the caller's jobs from every service (GET /jobs on each),
// newest first, filtered by state (asked of the services) and type (filtered here: the
// services' list route takes a state, not a type), with "more" for the next pages.

import { STATES, goWith, pageAcross } from "./api.js";
import { bar, el, fill, stateBadge, when } from "./dom.js";

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

  const go = (change) => goWith("#/", query, change);

  async function load(nextPage) {
    more.disabled = true;
    const params = { limit: String(PAGE) };
    if (state) params.state = state;
    const found = await pageAcross(services, "/jobs", params, nextPage ? listing.cursors : null);
    listing.cursors = found.cursors;
    listing.problems.push(...found.problems);
    for (const { service, jobs } of found.pages) {
      for (const job of jobs) listing.jobs.push({ service, job });
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

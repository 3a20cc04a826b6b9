// The admin view (#/admin, for the admin group): every owner's jobs on every service
// (GET /admin/jobs on each, with an owner column and state, type and owner filters, all
// asked of the services; "More" follows each service's next_cursor), then each service's
// dead-letter queue with its redrive (admindlq.js). Each service's jobs come in its order:
// the most recent state change first, or with an owner filter the newest created first.
// A load's pages (the first, or one "More") are merged by that order, each page's rows
// kept in the order the service gave them, and appended below the rows shown: rows
// already shown never move, so each service's order holds throughout, and across services
// the order holds within each load.

import { STATES, goWith, pageAcross } from "./api.js";
import { renderDeadLetters } from "./admindlq.js";
import { bar, el, fill, stateBadge, when } from "./dom.js";

const PAGE = 25;

/** Draw the admin view into `view` for `services`, with the filters in `query`. */
export async function renderAdmin(view, services, query) {
  const state = STATES.includes(query.get("state")) ? query.get("state") : "";
  const type = (query.get("type") || "").trim();
  const owner = (query.get("owner") || "").trim();
  // The order the services answer in: GET /admin/jobs?owner= reads the owner index
  // (creation time), without it the state index (the latest state change).
  const order = owner
    ? { key: "created_at", column: "Created", says: "newest created first" }
    : { key: "updated_at", column: "Updated", says: "most recent state change first" };
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

  const go = (change) => goWith("#/admin", query, change);

  async function load(nextPage) {
    more.disabled = true;
    const params = { limit: String(PAGE) };
    if (state) params.state = state;
    if (type) params.type = type;
    if (owner) params.owner = owner;
    const found = await pageAcross(services, "/admin/jobs", params, nextPage ? listing.cursors : null);
    listing.cursors = found.cursors;
    listing.problems.push(...found.problems);
    const loaded = found.pages.map(({ service, jobs }) => jobs.map((job) => ({ service, job })));
    listing.jobs.push(...merged(loaded, order.key));
    draw();
  }

  function draw() {
    fill(rows, listing.jobs.length ? listing.jobs.map((shown) => row(shown, order.key))
      : el("tr", {}, el("td", { colspan: "8", class: "muted", id: "admin-no-jobs" }, "No jobs.")));
    fill(notes, listing.problems.map((text) => el("p", { class: "error" }, text)));
    more.hidden = Object.keys(listing.cursors).length === 0;
    more.disabled = false;
    view.dataset.jobsLoaded = "true";
  }

  fill(view,
    el("h1", {}, owner ? "Admin: one owner's jobs" : "Admin: every owner's jobs"),
    el("p", { class: "muted", id: "admin-order" }, `Each service's jobs, ${order.says}; "More" appends each service's next page below.`),
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
      el("thead", {}, el("tr", {}, ["Service", "Owner", "Type", "State", "Progress", "Message", order.column, "Job"].map((h) => el("th", {}, h)))),
      rows),
    more,
    el("h1", {}, "Dead-letter queues"),
    dlqs);
  view.dataset.jobsLoaded = "false";
  await Promise.all([load(false), renderDeadLetters(dlqs, services)]);
}

/** The rows of `pages` (one page a service, each in the order its service gave) merged
 * into one list, newest `key` first; each page's own order is kept as it is. */
function merged(pages, key) {
  const heads = pages.map(() => 0);
  const out = [];
  for (;;) {
    let best = -1;
    pages.forEach((page, i) => {
      if (heads[i] >= page.length) return;
      if (best < 0 || String(page[heads[i]].job[key]) > String(pages[best][heads[best]].job[key])) best = i;
    });
    if (best < 0) return out;
    out.push(pages[best][heads[best]]);
    heads[best] += 1;
  }
}

function row({ service, job }, key) {
  return el("tr", { class: "admin-job-row", "data-job-id": job.id, "data-owner": job.owner, "data-state": job.state },
    el("td", {}, service),
    el("td", { class: "owner" }, job.owner),
    el("td", {}, job.type),
    el("td", {}, stateBadge(job.state)),
    el("td", {}, bar(job.progress)),
    el("td", {}, job.error || job.message || ""),
    el("td", {}, when(job[key])),
    el("td", { class: "id" }, job.id));
}

// The console's entry: sign-in, then a hash route from ROUTES: #/ (the jobs list,
// ?state=&type=), #/jobs/<service>/<job id> (one job), #/analytics (analytics' windows,
// ?metric=&window=&measure=), #/admin (the admin view, for the admin group:
// ?state=&type=&owner=).

import { consoleConfig, isAdmin, token } from "./api.js";
import { renderAdmin } from "./admin.js";
import { showAnalytics } from "./analytics.js";
import { el, fill } from "./dom.js";
import { renderJob } from "./job.js";
import { renderList } from "./list.js";
import { finishHostedSignIn, renderSignIn } from "./signin.js";

let config = { services: [], dev_token: false };
let leaving = new AbortController(); // ends the open job's event stream on navigation

// Each route: a pattern on the hash's path, whether it is an admin's view, and what draws it
// into `view` (with the pattern's match, the hash's query and the navigation's abort
// signal). The first that matches wins; the list is the fallback. A new view is one line.
const ROUTES = [
  {
    path: /^\/jobs\/([^/]+)\/([^/]+)$/,
    render: (view, match, query, signal) =>
      renderJob(view, decodeURIComponent(match[1]), decodeURIComponent(match[2]), signal),
  },
  { path: /^\/analytics$/, render: (view, match, query, signal) => showAnalytics(view, signal) },
  { path: /^\/admin$/, admin: true, render: (view, match, query) => renderAdmin(view, config.services, query) },
  { path: /^\/?$/, render: (view, match, query) => renderList(view, config.services, query) },
];

/** The header's links: the jobs list, analytics where the console has that service, and
 * the admin view for the admin group only. */
function renderNav(path) {
  const link = (href, id, label, current) => el("a", { href, id, class: current ? "current" : null }, label);
  const section = path.startsWith("/admin") ? "admin" : path.startsWith("/analytics") ? "analytics" : "jobs";
  fill(document.getElementById("nav"), token()
    ? [
        link("#/", "nav-jobs", "Jobs", section === "jobs"),
        config.services.includes("analytics") ? link("#/analytics", "nav-analytics", "Analytics", section === "analytics") : null,
        isAdmin() ? link("#/admin", "nav-admin", "Admin", section === "admin") : null,
      ]
    : []);
}

async function route() {
  leaving.abort();
  leaving = new AbortController();
  const view = document.getElementById("view");
  renderSignIn(config, { onChange: route });
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  renderNav(path);
  if (!token()) {
    fill(view, el("p", { class: "muted" }, "Sign in to see your jobs."));
    return;
  }
  const query = new URLSearchParams(search);
  for (const candidate of ROUTES) {
    const match = path.match(candidate.path);
    if (!match) continue;
    if (candidate.admin && !isAdmin()) {
      fill(view, el("p", { class: "muted", id: "not-admin" }, "The admin view is for members of the admin group."));
      return;
    }
    await candidate.render(view, match, query, leaving.signal);
    return;
  }
  await renderList(view, config.services, query);
}

async function start() {
  try {
    config = await consoleConfig();
  } catch (error) {
    fill(document.getElementById("view"), el("p", { class: "error" }, `The console's server did not answer: ${error}`));
    return;
  }
  await finishHostedSignIn(config); // back from the hosted UI: redeem its code, once
  window.addEventListener("hashchange", route);
  await route();
}

start();

// The console's entry: sign-in, then a hash route: #/ (the jobs list, ?state=&type=) or
// #/jobs/<service>/<job id> (one job).

import { consoleConfig, token } from "./api.js";
import { el, fill } from "./dom.js";
import { renderJob } from "./job.js";
import { renderList } from "./list.js";
import { renderSignIn } from "./signin.js";

let config = { services: [], dev_token: false };
let leaving = new AbortController(); // ends the open job's event stream on navigation

async function route() {
  leaving.abort();
  leaving = new AbortController();
  const view = document.getElementById("view");
  renderSignIn(config, { onChange: route });
  if (!token()) {
    fill(view, el("p", { class: "muted" }, "Sign in to see your jobs."));
    return;
  }
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  const match = path.match(/^\/jobs\/([^/]+)\/([^/]+)$/);
  if (match) {
    await renderJob(view, decodeURIComponent(match[1]), decodeURIComponent(match[2]), leaving.signal);
  } else {
    await renderList(view, config.services, new URLSearchParams(search));
  }
}

async function start() {
  try {
    config = await consoleConfig();
  } catch (error) {
    fill(document.getElementById("view"), el("p", { class: "error" }, `The console's server did not answer: ${error}`));
    return;
  }
  window.addEventListener("hashchange", route);
  await route();
}

start();

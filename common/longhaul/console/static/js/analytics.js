// Analytics (#/analytics?metric=&window=&measure=): the caller's metrics (GET /metrics) and,
// for the one chosen, a chart and a table of its windows, per group, kept live by the
// service's window stream (GET /aggregates/stream: `live` while a window is open, `window`
// when it closes or a late event revises it). The stream starts from "now" and carries no
// event ids, so each time it is opened the page first has it open, then reads the recent
// windows (GET /aggregates) for what came before: a window the stream has already sent is
// never overwritten by that older read. Every value goes into the page as text (dom.js).

import { apiUrl, authHeaders, call, describe } from "./api.js";
import { COLOURS, lineChart, short } from "./charts.js";
import { el, fill, when } from "./dom.js";
import { readEvents, sleep } from "./sse.js";
import { ensureStyles } from "./styles.js";

const SERVICE = "analytics";
// The windows the stream follows (the service's WINDOWS; sessions are not streamed): the
// time between two windows' starts, and how many of the latest are shown.
const WINDOWS = {
  "1m": { every: 60_000, shown: 60 },
  "5m/1m": { every: 60_000, shown: 60 },
  "1h": { every: 3_600_000, shown: 48 },
  "1d": { every: 86_400_000, shown: 30 },
};
const MEASURES = ["count", "sum", "min", "max", "distinct", "p50", "p95", "p99"];
const ZERO_WHEN_EMPTY = new Set(["count", "sum", "distinct"]); // what a window with no events has
const TABLE_ROWS = 30; // the newest windows listed under the chart
const DRAW_EVERY_MS = 100; // updates arriving together are drawn once
const RETRY_MS = [500, 1000, 2000, 4000, 8000];

/** Draw the analytics page into `root`. It stops following the stream when `signal` aborts
 * (main.js passes the route's), when the hash changes, or once `root` no longer holds it. */
export async function showAnalytics(root, signal = null) {
  ensureStyles();
  const stop = new AbortController();
  if (signal) {
    if (signal.aborted) return;
    signal.addEventListener("abort", () => stop.abort(), { once: true });
  }
  window.addEventListener("hashchange", () => stop.abort(), { once: true });
  const asked = new URLSearchParams(location.hash.split("?")[1] || "");
  fill(root, el("h1", {}, "Analytics"), el("p", { class: "muted" }, "Loading…"));
  const listed = await call(SERVICE, "/metrics");
  if (stop.signal.aborted) return;
  if (!listed.ok) {
    fill(root, el("h1", {}, "Analytics"), el("p", { class: "error", id: "analytics-problem" },
      listed.status === 404 ? `No analytics here (${describe(listed)}).` : describe(listed)));
    return;
  }
  const metrics = Array.isArray(listed.body) ? listed.body : [];
  const state = {
    metric: metrics.some((m) => m.name === asked.get("metric")) ? asked.get("metric") : null,
    window: WINDOWS[asked.get("window")] ? asked.get("window") : "1m",
    measure: MEASURES.includes(asked.get("measure")) ? asked.get("measure") : "count",
  };
  const panel = el("div", { id: "analytics-panel" });
  const rows = el("tbody", { id: "analytics-metrics" });
  const box = el("div", { id: "analytics", "data-ready": "true" },
    el("h1", {}, "Analytics"),
    el("p", { class: "muted" }, "Your metrics (PUT /metrics/{name} declares one; every event is counted in ",
      el("code", {}, "events"), "). Choose one to follow its windows as they close."),
    el("table", { class: "analytics-metrics" },
      el("thead", {}, el("tr", {}, ["metric", "event", "dimensions", "value", "distinct"].map((h) => el("th", {}, h)))),
      rows),
    panel);
  fill(root, box);

  let following = null;
  function choose(change) {
    Object.assign(state, change);
    const metric = metrics.find((m) => m.name === state.metric);
    if (metric && !measuresOf(metric).includes(state.measure)) state.measure = "count";
    const query = new URLSearchParams(Object.entries(state).filter(([, v]) => v));
    // replaceState fires no hashchange: the page stays, the address can be bookmarked.
    history.replaceState(null, "", `#/analytics?${query}`);
    drawMetrics();
    if (following) following.abort();
    if (!metric) {
      fill(panel, el("p", { class: "muted", id: "analytics-choose" }, "Choose a metric above."));
      return;
    }
    following = new AbortController();
    const mine = following;
    stop.signal.addEventListener("abort", () => mine.abort(), { once: true });
    followWindows(panel, metric, state, choose, mine, () => !root.contains(box));
  }

  function drawMetrics() {
    fill(rows, metrics.length ? metrics.map((m) => el("tr", {
      class: m.name === state.metric ? "metric-row chosen" : "metric-row", "data-metric": m.name,
    },
    el("td", {}, el("a", { href: `#/analytics?metric=${encodeURIComponent(m.name)}`, class: "choose-metric",
      onclick: (event) => { event.preventDefault(); choose({ metric: m.name }); } }, m.name)),
    el("td", {}, el("code", {}, m.builtin ? "(every event)" : m.event)),
    el("td", {}, m.dimensions && m.dimensions.length ? m.dimensions.join(", ") : "—"),
    el("td", {}, m.value || "—"),
    el("td", {}, m.distinct || "—")))
      : el("tr", {}, el("td", { colspan: "5", class: "muted" }, "No metrics.")));
  }

  choose({});
}

function measuresOf(metric) {
  return MEASURES.filter((m) => m === "count" || (m === "distinct" ? metric.distinct : metric.value));
}

/** The chosen metric's windows, drawn into `panel` and kept current until `control` aborts
 * (or `gone()` says the page left). */
async function followWindows(panel, metric, state, choose, control, gone) {
  const { signal } = control;
  const spec = WINDOWS[state.window];
  const windows = new Map(); // `${start}|${group}` -> the window's latest row
  let fromStream = new Set(); // keys the open stream has sent: newer than any read
  let watermark = null;
  const status = el("span", { id: "stream-state", class: "live-dot off" }, "connecting");
  const mark = el("span", { class: "muted", id: "watermark" });
  const chart = el("div", { id: "window-chart", class: "charts" });
  const body = el("tbody", { id: "window-rows" });
  const select = (id, values, current, key) => el("select", {
    id, onchange: (event) => choose({ [key]: event.target.value }),
  }, values.map((v) => el("option", { value: v, selected: v === current ? "selected" : null }, v)));
  fill(panel,
    el("h2", {}, "Windows of ", el("code", { id: "chosen-metric" }, metric.name)),
    el("div", { class: "filters" },
      el("label", {}, "window ", select("window-kind", Object.keys(WINDOWS), state.window, "window")),
      el("label", {}, "value ", select("window-measure", measuresOf(metric), state.measure, "measure")),
      status, mark),
    chart,
    el("table", { class: "window-rows" },
      el("thead", {}, el("tr", {}, ["window start", "group", "count", "sum", "min", "max", "distinct",
        "p50", "p95", "p99", "state"].map((h) => el("th", {}, h)))),
      body));

  let drawing = null;
  const draw = () => { drawing ??= setTimeout(() => { drawing = null; if (!signal.aborted) drawNow(); }, DRAW_EVERY_MS); };
  function drawNow() {
    const since = Date.now() - spec.shown * spec.every;
    for (const [key, row] of windows) if (Date.parse(row.start) < since) windows.delete(key);
    const shown = [...windows.values()];
    fill(chart, windowChart(metric, state.measure, shown, state.window));
    shown.sort((a, b) => b.start.localeCompare(a.start) || groupName(a.group).localeCompare(groupName(b.group)));
    fill(body, shown.length ? shown.slice(0, TABLE_ROWS).map(windowRow)
      : el("tr", {}, el("td", { colspan: "11", class: "muted" }, "No windows yet.")));
    fill(mark, watermark ? `watermark ${when(watermark)}` : "");
    panel.dataset.windows = String(windows.size);
  }
  function take(row, streamed) {
    const key = `${row.start}|${groupName(row.group)}`;
    const before = windows.get(key);
    if (streamed) fromStream.add(key);
    else if (fromStream.has(key)) return; // the stream already told something newer
    // A stale `live` of a window the closer just wrote says nothing new.
    if (before && before.final && !row.final && sameNumbers(before, row)) return;
    windows.set(key, row);
  }
  async function read() {
    const now = Date.now();
    const params = {
      metric: metric.name, window: state.window,
      start: new Date(now - spec.shown * spec.every).toISOString(), end: new Date(now + spec.every).toISOString(),
    };
    const answer = await call(SERVICE, "/aggregates", { params });
    if (!answer.ok) throw new Error(describe(answer));
    watermark = answer.body.watermark;
    for (const row of answer.body.windows || []) take(row, false);
    draw();
  }

  drawNow();
  const query = new URLSearchParams({ metric: metric.name, window: state.window });
  let attempt = 0;
  while (!signal.aborted && !gone()) {
    try {
      const answer = await fetch(apiUrl(SERVICE, `/aggregates/stream?${query}`), {
        headers: authHeaders({ Accept: "text/event-stream" }), signal, cache: "no-store",
      });
      if (answer.status >= 400 && answer.status < 500) {
        const problem = await answer.json().catch(() => null);
        setStatus(status, false, describe({ status: answer.status, body: problem }));
        await read().catch(() => {});
        return;
      }
      if (!answer.ok || !answer.body) throw new Error(`HTTP ${answer.status}`);
      fromStream = new Set();
      setStatus(status, true, "live");
      await read(); // after the stream is open: nothing closed in between is missed
      attempt = 0;
      for await (const event of readEvents(answer.body, signal)) {
        if (gone()) { control.abort(); return; }
        let row = null;
        try { row = JSON.parse(event.data); } catch { continue; }
        if (row && typeof row.start === "string") { take(row, true); draw(); }
      }
      if (!signal.aborted) setStatus(status, false, "the stream ended (its lifetime); reopening");
    } catch (error) {
      if (signal.aborted) return;
      setStatus(status, false, `live updates paused (${error.message || error}); retrying`);
    }
    await sleep(RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)], signal);
  }
}

function setStatus(node, live, text) {
  node.className = live ? "live-dot" : "live-dot off";
  fill(node, text);
}

function groupName(group) {
  const entries = Object.entries(group || {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([k, v]) => `${k}=${v === null ? "(none)" : v}`).join(", ") : "all";
}

function sameNumbers(a, b) {
  return MEASURES.every((m) => a[m] === b[m]);
}

/** One line per group (the groups with the most events first, at most COLOURS of them):
 * `measure` of each window at its start; a filled dot is a final window, a hollow one a
 * window still open (or being revised). A group's window that holds no row had none of
 * its events: its count, sum and distinct are 0 (drawn, with no dot, from the first window
 * shown to the one now open); its min, max and percentiles do not exist (the line breaks). */
function windowChart(metric, measure, rows, windowKind) {
  const totals = new Map();
  for (const row of rows) totals.set(groupName(row.group), (totals.get(groupName(row.group)) || 0) + row.count);
  const groups = [...totals.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([g]) => g);
  const drawn = groups.slice(0, COLOURS);
  const lines = new Map(drawn.map((g) => [g, []]));
  const every = WINDOWS[windowKind].every;
  const current = Math.floor(Date.now() / every) * every; // the window now open
  if (ZERO_WHEN_EMPTY.has(measure) && rows.length) {
    const first = Math.min(...rows.map((row) => Date.parse(row.start)));
    const held = new Set(rows.map((row) => `${Date.parse(row.start)}|${groupName(row.group)}`));
    for (const [group, line] of lines) {
      for (let at = first; at <= current; at += every) {
        if (!held.has(`${at}|${group}`)) line.push([at, 0, null]);
      }
    }
  }
  for (const row of rows) {
    const line = lines.get(groupName(row.group));
    const value = row[measure];
    if (!line || typeof value !== "number") continue;
    line.push([Date.parse(row.start), value, {
      class: row.final ? "final" : "open",
      "data-start": row.start,
      "data-group": groupName(row.group),
      "data-value": String(value),
      "data-final": String(Boolean(row.final)),
      "data-revision": String(row.revision),
      title: `${when(row.start)} ${groupName(row.group)}: ${measure} ${short(value)}${row.final ? "" : " (open)"}`,
    }]);
  }
  const day = windowKind === "1d";
  const tick = (ms) => (day ? new Date(ms).toLocaleDateString() : new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  const figure = lineChart(`${metric.name} · ${measure} per ${windowKind} window`, lines, {
    width: 720, height: 220, markers: true, xTick: tick, xRange: [current, current], gap: every,
    fromZero: measure === "count" || measure === "distinct",
  });
  figure.classList.add("wide");
  figure.id = "window-figure";
  const left = groups.length - drawn.length;
  return [figure,
    rows.length ? el("p", { class: "muted chart-note" }, ZERO_WHEN_EMPTY.has(measure)
      ? "A filled dot is a closed window (exact), a hollow one a window still counting; between dots, windows with none of the group's events (0)."
      : "A filled dot is a closed window (exact), a hollow one a window still counting; a line breaks where a window had none of the group's events.") : null,
    left > 0 ? el("p", { class: "muted chart-note" }, `${left} more group(s) in the table, not drawn.`) : null,
    rows.length ? null : el("p", { class: "muted chart-note" },
      `No windows in the last ${WINDOWS[windowKind].shown}: send events named `,
      el("code", {}, metric.builtin ? "(any)" : metric.event), " (POST /events).")];
}

function windowRow(row) {
  const cell = (value) => el("td", { class: "num" }, value === null || value === undefined ? "—" : short(value));
  return el("tr", {
    class: row.final ? "window-row" : "window-row open",
    "data-start": row.start, "data-group": groupName(row.group), "data-count": String(row.count),
    "data-final": String(Boolean(row.final)), "data-revision": String(row.revision),
  },
  el("td", {}, when(row.start)), el("td", {}, groupName(row.group)),
  ["count", "sum", "min", "max", "distinct", "p50", "p95", "p99"].map((m) => cell(row[m])),
  el("td", {}, row.final ? `final${row.revision > 1 ? `, revision ${row.revision}` : ""}` : "open (counting)"));
}


// Metric charts: one small SVG line chart per metric of a job's metric points (a training
// job's GET /jobs/{id}/metrics: one point per round, epoch or fold). Built element by
// element, like the rest of the page; no chart library.

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 150;
const PAD = { left: 48, right: 10, top: 10, bottom: 22 };

/** Charts of every metric in `points` (x: `step`): a metric's numbers, at the top level of
 * a point or in its groups (`train`, `valid`), one line per group (and fold). */
export function metricCharts(points) {
  const metrics = new Map(); // metric -> line name -> [[step, value]]
  const add = (metric, line, step, value) => {
    if (typeof value !== "number" || !Number.isFinite(value)) return;
    if (!metrics.has(metric)) metrics.set(metric, new Map());
    const lines = metrics.get(metric);
    if (!lines.has(line)) lines.set(line, []);
    lines.get(line).push([step, value]);
  };
  for (const point of points) {
    const step = Number(point.step) || 0;
    const fold = point.fold === null || point.fold === undefined ? "" : ` fold ${point.fold}`;
    for (const [key, value] of Object.entries(point)) {
      if (SKIPPED.has(key)) continue;
      if (value && typeof value === "object" && !Array.isArray(value)) {
        for (const [metric, number] of Object.entries(value)) add(metric, `${key}${fold}`, step, number);
      } else {
        add(key, `value${fold}`, step, value);
      }
    }
  }
  return el("div", { id: "metric-charts", class: "charts" },
    [...metrics.keys()].sort().map((metric) => chart(metric, metrics.get(metric))));
}

const SKIPPED = new Set(["step", "of", "fold", "kind"]);

function chart(name, lines) {
  const all = [...lines.values()].flat();
  const [x0, x1] = span(all.map(([x]) => x));
  const [y0, y1] = span(all.map(([, y]) => y));
  const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
  const py = (y) => HEIGHT - PAD.bottom - ((y - y0) / (y1 - y0)) * (HEIGHT - PAD.top - PAD.bottom);
  const svg = svgEl("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img", "aria-label": name });
  svg.append(
    svgEl("line", { x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH - PAD.right, y2: HEIGHT - PAD.bottom, class: "axis" }),
    svgEl("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: HEIGHT - PAD.bottom, class: "axis" }),
    label(PAD.left - 4, PAD.top + 8, "end", short(y1)),
    label(PAD.left - 4, HEIGHT - PAD.bottom, "end", short(y0)),
    label(PAD.left, HEIGHT - 6, "start", `step ${short(x0)}`),
    label(WIDTH - PAD.right, HEIGHT - 6, "end", short(x1)),
  );
  const legend = [];
  [...lines.entries()].forEach(([line, series], index) => {
    const ordered = [...series].sort((a, b) => a[0] - b[0]);
    svg.append(svgEl("polyline", {
      class: `series series-${index % 4}`,
      "data-line": line,
      points: ordered.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" "),
    }));
    legend.push(el("span", { class: `legend legend-${index % 4}` }, `${line} ${short(ordered[ordered.length - 1][1])}`));
  });
  return el("figure", { class: "metric-chart", "data-metric": name, "data-points": String(all.length) },
    el("figcaption", {}, el("strong", {}, name), " ", legend), svg);
}

function span(values) {
  if (!values.length) return [0, 1];
  const low = Math.min(...values);
  const high = Math.max(...values);
  return low === high ? [low - 0.5, high + 0.5] : [low, high];
}

function short(value) {
  return Number.isInteger(value) ? String(value) : Number(value).toPrecision(3);
}

function label(x, y, anchor, text) {
  const node = svgEl("text", { x, y, "text-anchor": anchor, class: "tick" });
  node.textContent = text;
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

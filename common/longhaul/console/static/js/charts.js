// Line charts as small SVGs built element by element, like the rest of the page; no chart
// library. `metricCharts` draws a training job's metric points (GET /jobs/{id}/metrics: one
// point per round, epoch or fold); `lineChart` is the chart itself, which analytics' window
// charts use too.

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 150;
const PAD = { left: 48, right: 10, top: 10, bottom: 22 };
export const COLOURS = 6; // series-0 .. series-5 (console.css and outputs.css)

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
    [...metrics.keys()].sort().map((metric) => lineChart(metric, metrics.get(metric))));
}

const SKIPPED = new Set(["step", "of", "fold", "kind"]);

/** A line chart titled `name` of `lines` (line name -> [[x, y, pointAttrs?]]), one polyline
 * each, with its latest value in the legend. Options: `xTick(x)` labels the x axis' two ends
 * (default "step <x>" and "<x>"); `fromZero` starts the y axis at 0 when every value is
 * above it; `xRange` [low, high] widens the x axis to hold it; `gap` breaks a line between
 * two points further apart than that on x (nothing was measured between them); `markers`
 * draws each point as a dot carrying its `pointAttrs` (data-* for tests, `class`, and
 * `title`, shown on hover; null: no dot); `width`, `height` its size. */
export function lineChart(name, lines, options = {}) {
  const width = options.width || WIDTH;
  const height = options.height || HEIGHT;
  const xTick = options.xTick || null;
  const all = [...lines.values()].flat();
  const [x0, x1] = span([...all.map(([x]) => x), ...(all.length && options.xRange ? options.xRange : [])]);
  const ys = all.map(([, y]) => y);
  const [y0, y1] = span(options.fromZero && ys.length && Math.min(...ys) > 0 ? [0, ...ys] : ys);
  const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (width - PAD.left - PAD.right);
  const py = (y) => height - PAD.bottom - ((y - y0) / (y1 - y0)) * (height - PAD.top - PAD.bottom);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": name });
  svg.append(
    svgEl("line", { x1: PAD.left, y1: height - PAD.bottom, x2: width - PAD.right, y2: height - PAD.bottom, class: "axis" }),
    svgEl("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: height - PAD.bottom, class: "axis" }),
    label(PAD.left - 4, PAD.top + 8, "end", short(y1)),
    label(PAD.left - 4, height - PAD.bottom, "end", short(y0)),
    label(PAD.left, height - 6, "start", xTick ? xTick(x0) : `step ${short(x0)}`),
    label(width - PAD.right, height - 6, "end", xTick ? xTick(x1) : short(x1)),
  );
  const legend = [];
  [...lines.entries()].forEach(([line, series], index) => {
    if (!series.length) return;
    const colour = index % COLOURS;
    const ordered = [...series].sort((a, b) => a[0] - b[0]);
    for (const run of runs(ordered, options.gap)) {
      svg.append(svgEl("polyline", {
        class: `series series-${colour}`,
        "data-line": line,
        points: run.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" "),
      }));
    }
    if (options.markers) {
      for (const [x, y, pointAttrs] of ordered) {
        if (pointAttrs === null) continue; // a point of the line, not one to mark
        const { title, ...attrs } = pointAttrs || {};
        const dot = svgEl("circle", {
          ...attrs,
          class: `point series-${colour} ${attrs.class || ""}`.trim(),
          cx: px(x).toFixed(1),
          cy: py(y).toFixed(1),
          r: 3,
        });
        if (title) dot.append(Object.assign(svgEl("title", {}), { textContent: title }));
        svg.append(dot);
      }
    }
    const marked = ordered.filter((point) => point[2] !== null); // the legend's latest: a measured one
    const latest = (marked.length ? marked : ordered)[(marked.length ? marked : ordered).length - 1];
    legend.push(el("span", { class: `legend legend-${colour}` }, `${line} ${short(latest[1])}`));
  });
  return el("figure", { class: "metric-chart", "data-metric": name, "data-points": String(all.length) },
    el("figcaption", {}, el("strong", {}, name), " ", legend), svg);
}

/** `ordered` cut where two neighbours are more than `gap` apart on x (all of it without). */
function runs(ordered, gap) {
  if (!gap) return [ordered];
  const cut = [];
  for (const point of ordered) {
    const last = cut[cut.length - 1];
    if (last && point[0] - last[last.length - 1][0] <= gap) last.push(point);
    else cut.push([point]);
  }
  return cut;
}

function span(values) {
  if (!values.length) return [0, 1];
  const low = Math.min(...values);
  const high = Math.max(...values);
  return low === high ? [low - 0.5, high + 0.5] : [low, high];
}

/** A number in at most three significant digits (integers whole). */
export function short(value) {
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

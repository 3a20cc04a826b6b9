// A model's card on the page of the job that made (or used) it: the training API's
// GET /models/{id} (the registry's record and its card) and GET /models/{id}/download (short-
// lived links to the model's files). Every value goes into the page as text (dom.js).

import { call, describe } from "./api.js";
import { el, when } from "./dom.js";
import { ensureStyles } from "./styles.js";

// What a model file's name says about its format (training/artifacts.py writes these).
const FORMATS = [
  [".skops", "skops"],
  [".safetensors", "safetensors (tensors)"],
  [".onnx", "ONNX"],
  [".txt", "text"],
  [".json", "JSON"],
  [".md", "Markdown"],
];

/** The model id a job's result names (train, sweep, predict), or null. */
export function modelOf(job) {
  const id = job && job.result && typeof job.result === "object" ? job.result.model_id : null;
  return typeof id === "string" && id ? id : null;
}

/** The card of `service`'s model `modelId` as a section, or null when the service has no
 * model registry (404 on a service other than training). */
export async function modelCard(service, modelId) {
  ensureStyles();
  const path = `/models/${encodeURIComponent(modelId)}`;
  const record = await call(service, path);
  if (record.status === 404 || record.status === 405) return null;
  if (!record.ok) {
    return el("section", { id: "model-card", class: "model-card" }, el("h2", {}, "Model card"),
      el("p", { class: "error", id: "model-card-problem" }, describe(record)));
  }
  const model = record.body || {};
  const links = model.status === "ready" ? await call(service, `${path}/download`) : null;
  const urls = links && links.ok && links.body && typeof links.body.urls === "object" ? links.body.urls : {};
  return cardView(model, urls, links && !links.ok ? describe(links) : null);
}

function cardView(model, urls, linksProblem) {
  const card = model.card && typeof model.card === "object" ? model.card : null;
  const title = card
    ? `${card.family} ${card.task} of ${card.target}`
    : [model.family, model.task, model.target].filter(Boolean).join(" ") || model.name || "an uploaded model";
  return el("section", { id: "model-card", class: "model-card", "data-model-id": model.id },
    el("h2", {}, "Model card: ", el("span", { id: "card-title" }, title)),
    el("dl", { id: "card-facts" },
      fact("Model", el("code", {}, model.id), "model"),
      fact("Status", model.status, "status"),
      fact("Family", card ? card.family : model.family, "family"),
      fact("Task", card ? card.task : model.task, "task"),
      fact("Target", card ? card.target : model.target, "target"),
      card ? [
        fact("Rows used", card.rows, "rows"),
        fact("Seed", card.seed, "seed"),
        fact("Training time", `${Number(card.training_time_s).toFixed(1)} s`, "training-time"),
        fact("Created", when(card.created_at), "created"),
        fact("Validation", validation(card.validation, card.rows), "validation", true),
        fact("Dataset", el("code", {}, card.dataset_id ?? model.dataset_id ?? "—"), "dataset", true),
        fact("Dataset sha256", el("code", {}, card.dataset_sha256), "dataset-sha256", true),
      ] : fact("Card", "none: a model uploaded by its owner has no card", "no-card", true)),
    el("div", { class: "card-blocks" },
      card ? [
        el("div", {},
          el("h3", {}, "Metrics on the held-out rows ", el("span", { class: "muted" }, "(95% bootstrap interval)")),
          metricsTable(card.metrics || {}, card.metric),
          Array.isArray(card.labels) && card.labels.length
            ? el("p", {}, el("span", { class: "muted" }, "Labels (in code order): "),
              el("span", { id: "card-labels" }, card.labels.map(String).join(", ")))
            : null),
        el("div", {}, el("h3", {}, "Parameters"), paramsTable(card.params || {})),
        el("div", {}, el("h3", {}, "Features"), featuresTable(card.schema || [], card.target)),
      ] : null,
      el("div", {},
        el("h3", {}, "Files"),
        filesTable(Array.isArray(model.files) ? model.files : [], urls),
        linksProblem ? el("p", { class: "error", id: "card-links-problem" }, `No download links: ${linksProblem}`) : null)),
    card && card.library_versions ? el("p", { class: "muted", id: "card-libraries" }, "Libraries: ",
      Object.entries(card.library_versions).sort().map(([name, version]) => `${name} ${version}`).join(", ")) : null);
}

/** A name and its value; a `wide` one takes a row of its own. */
function fact(name, value, key, wide = false) {
  const shown = value === null || value === undefined || value === "" ? "—" : value;
  return [el("dt", { class: wide ? "wide" : null }, name),
    el("dd", { "data-fact": key, class: wide ? "wide" : null }, shown instanceof Node ? shown : String(shown))];
}

function validation(how, rows) {
  if (!how || typeof how !== "object") return "—";
  if (typeof how.holdout === "number") {
    const held = Math.round(how.holdout * Number(rows));
    return `holdout of ${Math.round(how.holdout * 100)}% (about ${held} of ${rows} rows)`;
  }
  if (how.folds !== undefined) return `${how.folds}-fold cross-validation (every row's out-of-fold prediction)`;
  return JSON.stringify(how);
}

function number(value) {
  if (value === null || value === undefined) return "n/a";
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toPrecision(4);
}

function metricsTable(metrics, optimized) {
  const rows = Object.entries(metrics).map(([name, m]) => {
    const value = m && typeof m === "object" ? m.value : m;
    const ci = m && Array.isArray(m.ci95) ? m.ci95 : [null, null];
    return el("tr", { class: "card-metric", "data-metric": name, "data-value": String(value) },
      el("td", {}, name, name === optimized ? el("span", { class: "muted" }, " (optimized)") : null),
      el("td", { class: "num" }, number(value)),
      el("td", { class: "num" }, `${number(ci[0])} .. ${number(ci[1])}`));
  });
  return el("table", { id: "card-metrics", class: "card-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "metric"), el("th", {}, "value"), el("th", {}, "95% CI"))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: "3", class: "muted" }, "none"))));
}

function paramsTable(params) {
  return el("table", { id: "card-params", class: "card-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "value"))),
    el("tbody", {}, Object.keys(params).sort().map((name) =>
      el("tr", { class: "card-param", "data-param": name },
        el("td", {}, name), el("td", { class: "num" }, JSON.stringify(params[name]))))));
}

/** The dataset's columns as the card's schema has them: the target marked, every other
 * column a feature (the trainer uses every column but the target). */
function featuresTable(schema, target) {
  return el("table", { id: "card-features", class: "card-table" },
    el("thead", {}, el("tr", {}, ["column", "type", "missing", "distinct", "min", "max"].map((h) => el("th", {}, h)))),
    el("tbody", {}, schema.map((column) => {
      const isTarget = column.name === target;
      return el("tr", { class: isTarget ? "card-target" : "card-feature" },
        el("td", { class: "card-column-name" }, String(column.name), isTarget ? el("span", { class: "muted" }, " (target)") : null),
        el("td", {}, String(column.type)),
        el("td", { class: "num" }, number(column.missing)),
        el("td", { class: "num" }, column.distinct === null || column.distinct === undefined ? "—" : number(column.distinct)),
        el("td", { class: "num" }, column.min === null || column.min === undefined ? "—" : number(column.min)),
        el("td", { class: "num" }, column.max === null || column.max === undefined ? "—" : number(column.max)));
    })));
}

function format(name) {
  const lower = String(name).toLowerCase();
  const found = FORMATS.find(([suffix]) => lower.endsWith(suffix));
  return found ? found[1] : "—";
}

function filesTable(files, urls) {
  return el("table", { id: "card-files", class: "card-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "file"), el("th", {}, "format"), el("th", {}, "download"))),
    el("tbody", {}, files.map((name) => {
      const url = typeof urls[name] === "string" && /^https?:\/\//i.test(urls[name]) ? urls[name] : null;
      return el("tr", { class: "card-file", "data-file": name },
        el("td", {}, el("code", {}, name)),
        el("td", {}, format(name)),
        el("td", {}, url ? el("a", { href: url, rel: "noopener noreferrer", download: name }, "download") : "—"));
    })));
}

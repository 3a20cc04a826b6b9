// The stylesheet of the job outputs and analytics views (static/outputs.css), linked once
// at runtime by the modules that draw them, so that index.html needs no line for it.

const HREF = "static/outputs.css";

/** Link outputs.css into the page, once. */
export function ensureStyles() {
  if (document.querySelector("link[data-outputs-css]")) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = HREF;
  link.dataset.outputsCss = "true";
  document.head.append(link);
}

// Building the page without ever parsing text as HTML: every value lands in textContent or
// in an attribute set one by one, so a job's message or payload can not inject markup.

/** An element `tag` with `attrs` (on* handlers become listeners) and `children` (strings
 * become text nodes; null and false are skipped). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "hidden" || name === "disabled") {
      node[name] = Boolean(value);
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace everything inside `node` with `children`. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A progress bar and its percentage; `id` names the text for tests and screen readers. */
export function bar(progress, big = false) {
  const percent = Math.round(Math.max(0, Math.min(1, Number(progress) || 0)) * 100);
  const inner = el("span");
  inner.style.width = `${percent}%`;
  return [el("span", { class: big ? "big bar" : "bar", role: "presentation" }, inner), `${percent}%`];
}

/** A timestamp as local time, or a dash. */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** A state word, coloured by a class (the class is chosen from a fixed list). */
export function stateBadge(state, id) {
  const known = ["queued", "running", "succeeded", "failed", "cancelled"];
  const cls = known.includes(state) ? `state state-${state}` : "state";
  return el("span", { class: cls, id }, String(state));
}

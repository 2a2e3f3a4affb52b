// Small DOM helpers: elements are built with h(), never from HTML strings, so no
// value stored in hivemem can inject markup into the console.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  appendAll(el, children);
  return el;
}

/** Append children (nodes, strings, nested arrays; null and false are skipped). */
export function append(el, ...children) {
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) appendAll(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
  return el;
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour12: false });
}

/** Time of day for today, else the date and time, to the minute. */
export function fmtShort(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (d.toDateString() === new Date().toDateString()) return fmtTime(iso);
  return `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${d.toLocaleTimeString([], { hour12: false, hour: "2-digit", minute: "2-digit" })}`;
}

export function fmtDateTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.toLocaleDateString([], { year: "numeric", month: "2-digit", day: "2-digit" })} ${d.toLocaleTimeString([], { hour12: false })}`;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** JSON with object keys sorted at every level: stable text for diffs. */
export function canonicalJson(value) {
  return JSON.stringify(sortKeys(value), null, 2);
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out = {};
    for (const k of Object.keys(value).sort()) out[k] = sortKeys(value[k]);
    return out;
  }
  return value;
}

export function opBadge(op, deleted) {
  const name = deleted ? "delete" : op;
  return h("span", { class: `op op-${name}` }, name);
}

export function toast(message, kind) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = kind || "";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => {
    el.hidden = true;
  }, 4000);
}

export function errorBox(err) {
  const status = err && err.status ? `${err.status} ` : "";
  const field = err && err.problem && err.problem.field ? ` (${err.problem.field})` : "";
  return h("div", { class: "error", role: "alert" }, `${status}${err.message || err}${field}`);
}

/** Parse a JSON text field, naming it on failure. */
export function parseJsonField(text, name, fallback) {
  if (text.trim() === "") return fallback;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${name}: not valid JSON`);
  }
}

/** Hash routes: #/page?name=value → {page, params}. */
export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [page, query] = raw.split("?", 2);
  return { page: page || "feed", params: new URLSearchParams(query || "") };
}

export function hashFor(page, params) {
  const q = new URLSearchParams(params || {}).toString();
  return `#/${page}${q ? `?${q}` : ""}`;
}

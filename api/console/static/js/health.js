// Coordination health: writes, conflicts, expiries and lagged watchers over a time
// window, per namespace and per author, as small bar charts (GET /v1/activity).

import { clear, errorBox, fmtDateTime, fmtTime, h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const METRICS = [
  ["writes", "Writes"],
  ["conflicts", "Conflicts (409)"],
  ["expiries", "Expiries"],
  ["lagged", "Lagged watchers"],
];
const WINDOWS = [
  [900, "15 minutes"],
  [3600, "1 hour"],
  [21600, "6 hours"],
  [86400, "24 hours"],
];
const REFRESH_MS = 10000;

let state = null;

export function start(root, session, params) {
  const span = h(
    "select",
    { id: "health-window", "aria-label": "Window" },
    WINDOWS.map(([s, label]) => h("option", { value: s, selected: String(s) === (params.get("window") || "3600") }, label)),
  );
  const depth = h(
    "select",
    { id: "health-depth", "aria-label": "Namespace depth" },
    [["", "full namespaces"], ["1", "1 segment"], ["2", "2 segments"], ["3", "3 segments"]].map(([v, label]) =>
      h("option", { value: v, selected: v === (params.get("depth") || "") }, label),
    ),
  );
  const prefix = h("input", { id: "health-prefix", value: params.get("prefix") || "", placeholder: "everything readable", "aria-label": "Prefix" });
  const body = h("div", { id: "health-body" }, h("p", { class: "muted" }, "Loading…"));
  state = { session, body, span, depth, prefix, timer: null };
  const reload = () => load(state);
  span.addEventListener("change", reload);
  depth.addEventListener("change", reload);
  clear(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Coordination health"), h("span", { class: "status", id: "health-updated" })),
    h(
      "form",
      {
        class: "toolbar",
        onsubmit: (event) => {
          event.preventDefault();
          reload();
        },
      },
      h("label", {}, "Window ", span),
      h("label", {}, "Group by ", depth),
      h("label", {}, "Prefix ", prefix),
      h("button", { type: "submit" }, "Refresh"),
    ),
    body,
  );
  load(state);
  state.timer = setInterval(() => load(state), REFRESH_MS);
}

export function stop() {
  if (state) clearInterval(state.timer);
  state = null;
}

async function load(s) {
  let report;
  try {
    report = await s.session.api.get("v1/activity", {
      prefix: s.prefix.value.trim(),
      window: s.span.value,
      depth: s.depth.value,
      limit: 25,
    });
  } catch (err) {
    clear(s.body, errorBox(err));
    return;
  }
  if (state !== s) return;
  document.getElementById("health-updated").textContent = `updated ${fmtTime(report.end)}`;
  clear(
    s.body,
    totals(report),
    h("p", { class: "muted note" }, `Buckets of ${duration(report.bucket)} from ${fmtDateTime(report.start)}. Writes and expiries come from the log; conflicts and lagged watchers are counted by this server since ${fmtDateTime(report.recorded_since)} (its start) and are not kept across restarts.`),
    h("div", { class: "health-grid" }, table("By namespace", "namespaces", report.namespaces, report.more_namespaces, report), table("By author", "authors", report.authors, report.more_authors, report)),
  );
}

function totals(report) {
  return h(
    "div",
    { class: "totals", id: "health-totals" },
    METRICS.map(([metric, label]) => {
      const n = sum(report.total[metric]);
      return h(
        "div",
        { class: `total-card metric-${metric}${n && metric !== "writes" ? " alert" : ""}`, dataset: { metric, total: n } },
        h("div", { class: "label" }, label),
        h("div", { class: "value" }, n),
        chart(report.total[metric], report, metric, 240, 36, true),
      );
    }),
  );
}

function table(title, group, series, more, report) {
  const rows = series.length
    ? series.map((s) =>
        h(
          "tr",
          { dataset: { name: s.name } },
          h("td", { class: group === "authors" ? "author" : "ns" }, s.name === "" ? "(everything)" : s.name),
          METRICS.map(([metric]) => {
            const n = sum(s[metric]);
            return h("td", { class: `metric metric-${metric}`, dataset: { metric, total: n } }, chart(s[metric], report, metric, 80, 22), h("span", { class: `n${n && metric !== "writes" ? " alert" : ""}` }, n));
          }),
        ),
      )
    : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No activity in this window."))];
  return h(
    "div",
    { class: "card" },
    h("h2", {}, title),
    h(
      "table",
      { class: "grid health", id: `health-${group}` },
      h("thead", {}, h("tr", {}, h("th", {}, group === "authors" ? "Author" : "Namespace"), METRICS.map(([, label]) => h("th", {}, label)))),
      h("tbody", {}, rows),
    ),
    more ? h("p", { class: "muted" }, `and ${more} more`) : null,
  );
}

function chart(values, report, metric, width, height, stretch) {
  const svg = document.createElementNS(SVG, "svg");
  if (stretch) svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", `chart chart-${metric}`);
  svg.setAttribute("role", "img");
  const top = Math.max(...values, 0);
  const step = width / values.length;
  const base = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, class: "axis" })) base.setAttribute(k, v);
  svg.append(base);
  const start = Date.parse(report.start);
  values.forEach((v, i) => {
    if (!v) return;
    const bar = document.createElementNS(SVG, "rect");
    const barHeight = Math.max(2, ((height - 2) * v) / top);
    bar.setAttribute("x", (i * step + step * 0.1).toFixed(2));
    bar.setAttribute("width", Math.max(1, step * 0.8).toFixed(2));
    bar.setAttribute("y", (height - 1 - barHeight).toFixed(2));
    bar.setAttribute("height", barHeight.toFixed(2));
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${fmtTime(new Date(start + i * report.bucket * 1000).toISOString())}: ${v}`;
    bar.append(title);
    svg.append(bar);
  });
  svg.setAttribute("aria-label", `${metric}: ${sum(values)} in the window, at most ${top} per bucket`);
  return svg;
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

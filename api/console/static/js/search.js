// Search playground: vector, keyword or hybrid search with filters; hits with scores.

import { clear, errorBox, h, hashFor, json, parseJsonField } from "./ui.js";

let state = null;

export function start(root, session, params) {
  const query = h("input", { id: "search-query", name: "query", value: params.get("q") || "", placeholder: "what are you looking for?", required: true, "aria-label": "Query" });
  const mode = h(
    "select",
    { id: "search-mode", name: "mode", "aria-label": "Mode" },
    ["hybrid", "vector", "keyword"].map((m) => h("option", { value: m, selected: params.get("mode") === m }, m)),
  );
  const namespaces = h("input", { id: "search-namespaces", name: "namespaces", value: params.get("ns") || "", placeholder: "all readable (comma-separated prefixes)", "aria-label": "Namespaces" });
  const k = h("input", { id: "search-k", name: "k", type: "number", min: 1, max: 1000, value: params.get("k") || 10, "aria-label": "Hits" });
  const filter = h("textarea", { id: "search-filter", name: "filter", rows: 2, class: "code", placeholder: '{"kind": "plan", "priority": {"$gte": 2}}', "aria-label": "Filter" }, params.get("filter") || "");
  const results = h("div", { id: "search-results" });
  state = { session, results };

  const run = async (event) => {
    if (event) event.preventDefault();
    const s = state;
    clear(results, h("p", { class: "muted" }, "Searching…"));
    let body;
    try {
      body = {
        query: query.value,
        mode: mode.value,
        k: Number(k.value) || 10,
        filter: parseJsonField(filter.value, "filter", undefined),
      };
      const prefixes = namespaces.value.split(",").map((p) => p.trim()).filter(Boolean);
      if (prefixes.length) body.namespaces = prefixes;
    } catch (err) {
      clear(results, errorBox(err));
      return;
    }
    const started = performance.now();
    try {
      const hits = await s.session.api.post("v1/search", body);
      if (state !== s) return;
      showHits(results, hits, performance.now() - started);
    } catch (err) {
      clear(results, errorBox(err));
    }
  };

  clear(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Search")),
    h(
      "form",
      { class: "search-form card", id: "search-form", onsubmit: run },
      h("div", { class: "row" }, query, mode, h("button", { type: "submit", class: "primary" }, "Search")),
      h("div", { class: "row" }, h("label", {}, "Namespaces ", namespaces), h("label", {}, "Hits ", k)),
      h("label", {}, "Metadata filter (JSON)"),
      filter,
    ),
    results,
  );
  if (query.value) run();
}

export function stop() {
  state = null;
}

function showHits(results, hits, ms) {
  if (!hits.length) {
    clear(results, h("p", { class: "muted" }, "No hits."));
    return;
  }
  const top = Math.max(...hits.map((hit) => Math.abs(hit.score)), 1e-9);
  clear(
    results,
    h("p", { class: "muted" }, `${hits.length} hit${hits.length === 1 ? "" : "s"} in ${Math.round(ms)} ms`),
    h(
      "table",
      { class: "grid hits", id: "hits" },
      h("thead", {}, h("tr", {}, ["#", "Score", "Namespace / key", "Text", "Author", "Metadata"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        hits.map((hit, i) => {
          const item = hit.item;
          return h(
            "tr",
            { class: "hit", dataset: { namespace: item.namespace, key: item.key, score: hit.score } },
            h("td", { class: "num" }, i + 1),
            h(
              "td",
              { class: "score" },
              h("span", { class: "score-value" }, hit.score.toFixed(3)),
              h("span", { class: "bar" }, h("span", { class: "fill", dataset: { w: Math.round((100 * Math.abs(hit.score)) / top) } })),
            ),
            h("td", {}, h("a", { href: hashFor("browse", { ns: item.namespace, key: item.key }) }, h("span", { class: "ns" }, item.namespace), " / ", h("b", {}, item.key))),
            h("td", { class: "text" }, item.text || h("span", { class: "muted" }, json(item.value))),
            h("td", { class: "author" }, item.author),
            h("td", { class: "code small" }, Object.keys(item.metadata || {}).length ? JSON.stringify(item.metadata) : ""),
          );
        }),
      ),
    ),
  );
  // widths set through the CSSOM: the policy forbids inline style attributes
  for (const fill of results.querySelectorAll(".fill")) fill.style.width = `${fill.dataset.w}%`;
}

// Browse: namespaces as a tree with item counts, the items of one namespace, and an
// item with its value, metadata, whole history and a diff of any two versions.

import { ApiError, itemPath } from "./api.js";
import { diffTable } from "./jsondiff.js";
import { append, clear, errorBox, fmtDateTime, fmtShort, h, hashFor, json, opBadge, parseJsonField, toast } from "./ui.js";

let state = null;

export function start(root, session, params) {
  const tree = h("ul", { class: "tree", id: "ns-tree" });
  const items = h("div", { class: "pane items-pane", id: "items-pane" }, h("p", { class: "muted" }, "Pick a namespace."));
  const detail = h("div", { class: "pane detail-pane", id: "item-detail" }, h("p", { class: "muted" }, "Pick an item."));
  state = { session, root, tree, items, detail, nodes: new Map(), ns: null, key: null };
  clear(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Browse")),
    h("div", { class: "browse" }, h("div", { class: "pane tree-pane" }, h("h2", {}, "Namespaces"), tree), items, detail),
  );
  loadChildren(state, "", tree, 0).then(() => update(params));
}

export function stop() {
  state = null;
}

export async function update(params) {
  const s = state;
  if (!s) return;
  const ns = params.get("ns");
  const key = params.get("key");
  if (ns !== null && ns !== s.ns) {
    await reveal(s, ns);
    await showItems(s, ns);
  }
  if (key !== null && ns !== null && (key !== s.key || ns !== s.nsOfKey)) await showItem(s, ns, key);
}

// -- the tree --------------------------------------------------------------------
async function fetchNamespaces(api, prefix, depth) {
  const out = [];
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const result = await api.get("v1/namespaces", { prefix, depth, limit: 1000, cursor });
    out.push(...result.namespaces);
    cursor = result.cursor;
    if (!cursor) break;
  }
  return out;
}

async function loadChildren(s, prefix, list, depth) {
  let entries;
  try {
    entries = await fetchNamespaces(s.session.api, prefix, depth + 1);
  } catch (err) {
    clear(list, h("li", {}, errorBox(err)));
    return;
  }
  const children = entries.filter((e) => e.namespace !== prefix);
  const own = entries.find((e) => e.namespace === prefix);
  if (prefix !== "" && s.nodes.has(prefix)) s.nodes.get(prefix).direct = own ? own.items : 0;
  if (children.length === 0) {
    clear(list, prefix === "" ? h("li", { class: "muted" }, "No namespaces you may read hold items.") : null);
    if (prefix !== "") s.nodes.get(prefix).toggle.classList.add("leaf");
    return;
  }
  clear(list, children.map((e) => node(s, e, depth + 1)));
}

function node(s, entry, depth) {
  const name = entry.namespace;
  const label = name.split("/").slice(depth - 1).join("/");
  const children = h("ul", { class: "tree", hidden: true });
  const toggle = h("button", { type: "button", class: "toggle", "aria-label": `expand ${name}` }, "▸");
  const link = h(
    "a",
    { href: hashFor("browse", { ns: name }), class: "ns-link", dataset: { namespace: name } },
    label,
    h("span", { class: "count" }, entry.items),
  );
  const li = h("li", { dataset: { namespace: name } }, toggle, link, children);
  const info = { li, toggle, children, link, loaded: false, direct: null, depth };
  toggle.addEventListener("click", () => expand(s, name, !children.hidden ? false : true));
  s.nodes.set(name, info);
  return li;
}

async function expand(s, name, open) {
  const info = s.nodes.get(name);
  if (!info) return;
  info.children.hidden = !open;
  info.toggle.textContent = open ? "▾" : "▸";
  if (open && !info.loaded) {
    info.loaded = true;
    await loadChildren(s, name, info.children, info.depth);
  }
}

/** Open the tree down to ``ns`` and mark it selected. */
async function reveal(s, ns) {
  const parts = ns.split("/");
  for (let i = 1; i < parts.length; i++) {
    const ancestor = parts.slice(0, i).join("/");
    if (s.nodes.has(ancestor)) await expand(s, ancestor, true);
  }
  for (const info of s.nodes.values()) info.link.classList.toggle("selected", info.link.dataset.namespace === ns);
}

// -- the items of one namespace ----------------------------------------------------
async function showItems(s, ns) {
  s.ns = ns;
  const list = h("tbody", { id: "item-rows" });
  const more = h("button", { type: "button", hidden: true }, "More");
  let cursor = null;
  const load = async () => {
    const page = await s.session.api.get("v1/items", { prefix: ns, limit: 100, cursor });
    const mine = page.items.filter((item) => item.namespace === ns);
    list.append(...mine.map((item) => itemRow(ns, item)));
    // the listing covers namespaces below ns too, after ns's own items
    cursor = mine.length === page.items.length ? page.cursor : null;
    more.hidden = !cursor;
    if (!list.children.length) list.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No items directly here; see the namespaces below.")));
  };
  more.addEventListener("click", () => load().catch((err) => more.replaceWith(errorBox(err))));
  clear(
    s.items,
    h("h2", {}, ns),
    s.session.canWrite(ns) ? newItemForm(s, ns) : null,
    h("table", { class: "grid items" }, h("thead", {}, h("tr", {}, ["Key", "Version", "Author", "Updated"].map((t) => h("th", {}, t)))), list),
    more,
  );
  try {
    await load();
  } catch (err) {
    s.items.append(errorBox(err));
  }
}

function itemRow(ns, item) {
  return h(
    "tr",
    { dataset: { key: item.key } },
    h("td", {}, h("a", { href: hashFor("browse", { ns, key: item.key }), class: "item-link" }, item.key)),
    h("td", { class: "num" }, item.version),
    h("td", { class: "author" }, item.author),
    h("td", { class: "time", title: fmtDateTime(item.updated_at) }, fmtShort(item.updated_at)),
  );
}

function newItemForm(s, ns) {
  const key = h("input", { name: "key", placeholder: "key", required: true, "aria-label": "New key" });
  const value = h("textarea", { name: "value", rows: 3, placeholder: '{"any": "JSON"}', "aria-label": "New value" });
  const text = h("input", { name: "text", placeholder: "text to embed (optional)", "aria-label": "New text" });
  const out = h("div");
  return h(
    "details",
    { class: "write-control new-item" },
    h("summary", {}, "New item"),
    h(
      "form",
      {
        class: "stack",
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            const body = { value: parseJsonField(value.value, "value", null), if_version: 0 };
            if (text.value.trim()) body.text = text.value;
            await s.session.api.put(itemPath("items", ns, key.value.trim()), body);
            toast(`Created ${ns} / ${key.value.trim()}`);
            location.hash = hashFor("browse", { ns, key: key.value.trim() });
            await showItems(s, ns);
          } catch (err) {
            clear(out, errorBox(err));
          }
        },
      },
      key,
      value,
      text,
      h("button", { type: "submit", class: "primary" }, "Create"),
      out,
    ),
  );
}

// -- one item: value, metadata, history, diff -----------------------------------------
async function showItem(s, ns, key) {
  s.key = key;
  s.nsOfKey = ns;
  clear(s.detail, h("p", { class: "muted" }, "Loading…"));
  let history;
  try {
    history = await s.session.api.get(itemPath("history", ns, key));
  } catch (err) {
    clear(s.detail, errorBox(err));
    return;
  }
  if (s.key !== key) return;
  const latest = history[history.length - 1];
  const live = latest.deleted ? null : latest;
  const view = h("div", { class: "item-view" });
  clear(
    s.detail,
    h(
      "div",
      { class: "item-head" },
      h("h2", {}, h("span", { class: "ns" }, `${ns} / `), key),
      h(
        "p",
        { class: "muted" },
        live ? `version ${live.version} · revision ${live.revision} · by ` : `deleted at version ${latest.version} · by `,
        h("span", { class: "author" }, latest.author),
        ` · ${fmtDateTime(latest.updated_at)}`,
        live && live.expires_at ? ` · expires ${fmtDateTime(live.expires_at)}` : "",
      ),
      live && s.session.canWrite(ns) ? writeControls(s, live) : null,
    ),
    view,
  );
  if (live) {
    append(
      view,
      h("h3", {}, "Value"),
      h("pre", { class: "json", id: "item-value" }, json(live.value)),
      live.text !== null && live.text !== undefined ? [h("h3", {}, "Text"), h("p", { class: "text" }, live.text)] : null,
      h("h3", {}, "Metadata"),
      metadataTable(live.metadata),
    );
  }
  view.append(historySection(history));
}

function metadataTable(metadata) {
  const entries = Object.entries(metadata || {});
  if (!entries.length) return h("p", { class: "muted" }, "none");
  return h("table", { class: "grid meta" }, h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "code" }, JSON.stringify(v))))));
}

function historySection(history) {
  const n = history.length;
  const pick = { a: Math.max(0, n - 2), b: n - 1 };
  const diff = h("div", { class: "diff-holder" });
  const redraw = () => clear(diff, n > 1 ? diffTable(history[pick.a], history[pick.b]) : h("p", { class: "muted" }, "Only one version so far."));
  const radio = (side, index) =>
    h("input", {
      type: "radio",
      name: `diff-${side}`,
      value: index,
      checked: pick[side] === index,
      "aria-label": `compare version ${history[index].version} as ${side === "a" ? "left" : "right"}`,
      onchange: () => {
        pick[side] = index;
        redraw();
      },
    });
  const rows = history
    .map((item, index) =>
      h(
        "tr",
        { dataset: { version: item.version } },
        h("td", { class: "num" }, item.version),
        h("td", { class: "num" }, item.revision),
        h("td", {}, opBadge("put", item.deleted)),
        h("td", { class: "author" }, item.author),
        h("td", { class: "time" }, fmtDateTime(item.updated_at)),
        h("td", { class: "pick" }, radio("a", index)),
        h("td", { class: "pick" }, radio("b", index)),
      ),
    )
    .reverse(); // newest first, like the feed
  redraw();
  return h(
    "div",
    { class: "history" },
    h("h3", {}, `History (${n} version${n === 1 ? "" : "s"})`),
    h(
      "table",
      { class: "grid history-table", id: "history" },
      h("thead", {}, h("tr", {}, ["Version", "Revision", "Op", "Author", "Time", "Left", "Right"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows),
    ),
    h("h3", {}, "Compare versions"),
    diff,
  );
}

function writeControls(s, item) {
  const out = h("div");
  const value = h("textarea", { rows: 8, class: "code", "aria-label": "Value" }, json(item.value));
  const metadata = h("textarea", { rows: 3, class: "code", "aria-label": "Metadata" }, json(item.metadata || {}));
  const text = h("input", { value: item.text || "", "aria-label": "Text" });
  const save = async (event) => {
    event.preventDefault();
    try {
      const body = {
        value: parseJsonField(value.value, "value", null),
        metadata: parseJsonField(metadata.value, "metadata", {}),
        if_version: item.version, // compare-and-swap: never overwrite a write we have not seen
      };
      if (text.value.trim()) body.text = text.value;
      const written = await s.session.api.put(itemPath("items", item.namespace, item.key), body);
      toast(`Saved version ${written.version}`);
      s.key = null;
      await showItem(s, item.namespace, item.key);
    } catch (err) {
      clear(out, conflictHint(err));
    }
  };
  const remove = async () => {
    if (!confirm(`Delete ${item.namespace} / ${item.key}? History is kept.`)) return;
    try {
      await s.session.api.delete(itemPath("items", item.namespace, item.key), { if_version: item.version });
      toast("Deleted");
      s.key = null;
      await showItem(s, item.namespace, item.key);
    } catch (err) {
      clear(out, conflictHint(err));
    }
  };
  return h(
    "div",
    { class: "write-control item-actions" },
    h(
      "details",
      {},
      h("summary", {}, "Edit"),
      h("form", { class: "stack", onsubmit: save }, h("label", {}, "Value"), value, h("label", {}, "Text"), text, h("label", {}, "Metadata"), metadata, h("button", { type: "submit", class: "primary" }, `Save as version ${item.version + 1}`)),
    ),
    h("button", { type: "button", class: "danger", id: "delete-item", onclick: remove }, "Delete"),
    out,
  );
}

function conflictHint(err) {
  if (err instanceof ApiError && err.status === 409) {
    const now = err.problem.current;
    const who = now ? ` (now version ${now.version} by ${now.author})` : "";
    return errorBox({ status: 409, message: `Someone else wrote this item first${who}: reload it and try again.` });
  }
  return errorBox(err);
}

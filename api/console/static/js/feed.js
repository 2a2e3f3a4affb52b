// Live feed: the watch stream under a prefix, newest first, with pause and filters.

import { WatchStream } from "./api.js";
import { inScope } from "./session.js";
import { clear, errorBox, fmtTime, h, hashFor, opBadge } from "./ui.js";

const KEEP = 1000; // changes kept on screen (older ones fall off the bottom)
const BACKLOG = 100; // revisions replayed when the page opens

let state = null;

export async function start(root, session, params) {
  stop();
  state = {
    session,
    entries: [], // newest first
    held: [], // arrived while paused, oldest first
    paused: false,
    stream: null,
    prefix: params.get("prefix") || "",
    author: params.get("author") || "",
    namespace: params.get("ns") || "",
  };
  const prefix = h("input", { id: "feed-prefix", value: state.prefix, placeholder: "everything readable", "aria-label": "Watch prefix" });
  const author = h("input", { id: "feed-author", value: state.author, placeholder: "any author", "aria-label": "Filter by author" });
  const namespace = h("input", { id: "feed-namespace", value: state.namespace, placeholder: "any namespace", "aria-label": "Filter by namespace" });
  const pause = h("button", { type: "button", id: "feed-pause" }, "Pause");
  const status = h("span", { id: "feed-status", class: "status" }, "connecting…");
  const body = h("tbody", { id: "feed-rows" });
  state.els = { prefix, author, namespace, pause, status, body };

  const refilter = () => {
    state.author = author.value.trim();
    state.namespace = namespace.value.trim();
    render();
  };
  author.addEventListener("input", refilter);
  namespace.addEventListener("input", refilter);
  pause.addEventListener("click", () => (state.paused ? resume() : hold()));

  clear(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Live feed"), status),
    h(
      "form",
      {
        class: "toolbar",
        onsubmit: (event) => {
          event.preventDefault();
          state.prefix = prefix.value.trim();
          connect();
        },
      },
      h("label", {}, "Watch ", prefix),
      h("button", { type: "submit" }, "Watch"),
      h("span", { class: "sep" }),
      h("label", {}, "Author ", author),
      h("label", {}, "Namespace ", namespace),
      pause,
    ),
    h(
      "table",
      { class: "grid feed" },
      h(
        "thead",
        {},
        h("tr", {}, ["Revision", "Time", "Op", "Namespace / key", "Version", "Author"].map((t) => h("th", {}, t))),
      ),
      body,
    ),
  );
  connect();
}

export function stop() {
  if (state && state.stream) state.stream.stop();
  state = null;
}

async function connect() {
  const s = state;
  if (s.stream) s.stream.stop();
  s.entries = [];
  s.held = [];
  render();
  let since = 0;
  try {
    const { revision, compacted_revision } = await s.session.api.get("v1/revision");
    since = Math.max(0, revision - BACKLOG, compacted_revision - 1);
  } catch (err) {
    clear(s.els.status, errorBox(err));
    return;
  }
  if (state !== s) return;
  s.stream = new WatchStream(s.session.api, {
    namespaces: s.prefix ? [s.prefix] : undefined,
    since,
    onBatch: (revision, changes) => arrive(s, changes),
    onState: (what, detail) => showState(s, what, detail),
  }).start();
}

function showState(s, what, detail) {
  if (state !== s) return;
  const text = {
    live: "live",
    reconnecting: `reconnecting… (${detail})`,
    compacted: `history was compacted: ${detail}`,
    unauthorized: "the key was revoked",
  }[what];
  s.els.status.className = `status status-${what}`;
  s.els.status.textContent = s.paused ? `paused, ${s.held.length} new` : text;
  s.connection = what;
}

function arrive(s, changes) {
  if (state !== s) return;
  if (s.paused) {
    s.held.push(...changes);
    s.els.status.textContent = `paused, ${s.held.length} new`;
    return;
  }
  add(s, changes);
}

function add(s, changes) {
  for (const change of changes) s.entries.unshift(change);
  if (s.entries.length > KEEP) s.entries.length = KEEP;
  const rows = changes.filter(matches).map(row);
  // newest first: the last change of the batch goes on top
  for (const tr of rows) s.els.body.prepend(tr);
  while (s.els.body.children.length > KEEP) s.els.body.lastChild.remove();
}

function hold() {
  state.paused = true;
  state.els.pause.textContent = "Resume";
  state.els.pause.classList.add("primary");
  state.els.status.textContent = "paused, 0 new";
}

function resume() {
  const s = state;
  s.paused = false;
  s.els.pause.textContent = "Pause";
  s.els.pause.classList.remove("primary");
  const held = s.held;
  s.held = [];
  add(s, held);
  showState(s, s.connection || "live");
}

function matches(change) {
  if (state.author && change.author !== state.author) return false;
  if (state.namespace && !inScope(change.namespace, state.namespace)) return false;
  return true;
}

function render() {
  const rows = state.entries.filter(matches).map(row);
  clear(state.els.body, rows);
}

function row(change) {
  const link = hashFor("browse", { ns: change.namespace, key: change.key });
  const reason = change.reason ? ` (${change.reason})` : "";
  return h(
    "tr",
    {
      class: `change op-row-${change.op}`,
      dataset: {
        revision: change.revision,
        namespace: change.namespace,
        key: change.key,
        author: change.author,
        op: change.op,
      },
    },
    h("td", { class: "num" }, change.revision),
    h("td", { class: "time", title: change.time }, fmtTime(change.time)),
    h("td", {}, opBadge(change.op), reason),
    h("td", {}, h("a", { href: link }, h("span", { class: "ns" }, change.namespace), " / ", h("b", {}, change.key))),
    h("td", { class: "num" }, change.version),
    h("td", { class: "author" }, change.author),
  );
}

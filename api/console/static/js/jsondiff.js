// Side-by-side diff of two JSON documents, line by line over canonical (sorted-key,
// indented) text, so a changed field shows as one changed line wherever it sits.

import { canonicalJson, h } from "./ui.js";

const MAX_CELLS = 4_000_000; // beyond this the LCS table is too big: show whole sides

/** Edit script between two line lists: [{kind: "same"|"del"|"add", line}] in order. */
export function diffLines(a, b) {
  const n = a.length;
  const m = b.length;
  if (n * m > MAX_CELLS) {
    return [...a.map((line) => ({ kind: "del", line })), ...b.map((line) => ({ kind: "add", line }))];
  }
  // lcs[i][j]: length of the longest common subsequence of a[i:] and b[j:]
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ kind: "same", line: a[i] });
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      out.push({ kind: "del", line: a[i++] });
    } else {
      out.push({ kind: "add", line: b[j++] });
    }
  }
  while (i < n) out.push({ kind: "del", line: a[i++] });
  while (j < m) out.push({ kind: "add", line: b[j++] });
  return out;
}

/** Rows of a side-by-side view: runs of deletions and additions paired up. */
export function sideBySide(script) {
  const rows = [];
  let dels = [];
  let adds = [];
  const flush = () => {
    for (let k = 0; k < Math.max(dels.length, adds.length); k++) {
      rows.push({ left: dels[k], right: adds[k], kind: "change" });
    }
    dels = [];
    adds = [];
  };
  for (const step of script) {
    if (step.kind === "del") dels.push(step.line);
    else if (step.kind === "add") adds.push(step.line);
    else {
      flush();
      rows.push({ left: step.line, right: step.line, kind: "same" });
    }
  }
  flush();
  return rows;
}

/** What a version is compared by: its value, text and metadata. */
export function versionDocument(item) {
  if (item.deleted) return { deleted: true };
  return { value: item.value, text: item.text, metadata: item.metadata };
}

/** A table showing version ``a`` beside version ``b``. */
export function diffTable(a, b) {
  const left = canonicalJson(versionDocument(a)).split("\n");
  const right = canonicalJson(versionDocument(b)).split("\n");
  const rows = sideBySide(diffLines(left, right));
  const changed = rows.filter((r) => r.kind === "change").length;
  const cell = (text, side, kind) => {
    let cls = "same";
    if (kind === "change") cls = text === undefined ? "empty" : side === "left" ? "del" : "add";
    return h("td", { class: `code ${cls}` }, text === undefined ? "" : text);
  };
  const head = (item) =>
    h("th", {}, `version ${item.version}`, h("span", { class: "muted" }, ` · rev ${item.revision} · by `), h("span", { class: "author" }, item.author));
  return h(
    "div",
    { class: "diff", id: "diff" },
    h("p", { class: "muted diff-summary" }, changed === 0 ? "No differences." : `${changed} changed line${changed === 1 ? "" : "s"}.`),
    h(
      "table",
      { class: "diff-table" },
      h("thead", {}, h("tr", {}, head(a), head(b))),
      h(
        "tbody",
        {},
        rows.map((r) => h("tr", { class: `diff-${r.kind}` }, cell(r.left, "left", r.kind), cell(r.right, "right", r.kind))),
      ),
    ),
  );
}

// Access: principals, their grants and API keys, with create and revoke (admin keys).

import { clear, errorBox, fmtDateTime, h, toast } from "./ui.js";

let state = null;

export function start(root, session) {
  state = { session, root };
  render(state);
}

export function stop() {
  state = null;
}

async function render(s) {
  const api = s.session.api;
  let grants;
  let keys = null;
  let principals = null;
  try {
    grants = await api.get("v1/grants");
    if (s.session.isRootAdmin) {
      [keys, principals] = await Promise.all([api.get("v1/keys"), api.get("v1/principals")]);
    }
  } catch (err) {
    clear(s.root, h("h1", {}, "Access"), errorBox(err));
    return;
  }
  if (state !== s) return;
  const names = new Set(principals || []);
  for (const g of grants) names.add(g.principal);
  const secret = h("div", { id: "new-secret" });
  clear(
    s.root,
    h("div", { class: "page-head" }, h("h1", {}, "Access")),
    h(
      "div",
      { class: "access-forms" },
      grantForm(s),
      s.session.isRootAdmin ? keyForm(s) : h("p", { class: "muted" }, "Keys and principals need admin of the whole store."),
    ),
    secret,
    h("h2", {}, "Principals and grants"),
    principalsTable(s, [...names].sort(), grants, keys),
    keys ? [h("h2", {}, "API keys"), keysTable(s, keys)] : null,
  );
}

function grantForm(s) {
  const principal = h("input", { name: "principal", placeholder: "principal", required: true, "aria-label": "Principal" });
  const prefix = h("input", { name: "prefix", placeholder: "prefix (empty: everything)", "aria-label": "Prefix" });
  const permission = h("select", { name: "permission", "aria-label": "Permission" }, ["read", "write", "admin"].map((p) => h("option", { value: p }, p)));
  const out = h("div");
  return h(
    "form",
    {
      class: "card stack",
      id: "grant-form",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const g = await s.session.api.put("v1/grants", { principal: principal.value.trim(), prefix: prefix.value.trim(), permission: permission.value });
          toast(`Granted ${g.permission} on ${g.prefix || "*"} to ${g.principal}`);
          render(s);
        } catch (err) {
          clear(out, errorBox(err));
        }
      },
    },
    h("h3", {}, "Grant"),
    principal,
    prefix,
    permission,
    h("button", { type: "submit", class: "primary" }, "Grant"),
    out,
  );
}

function keyForm(s) {
  const principal = h("input", { name: "principal", placeholder: "principal", required: true, "aria-label": "Key principal" });
  const out = h("div");
  return h(
    "form",
    {
      class: "card stack",
      id: "key-form",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const created = await s.session.api.post("v1/keys", { principal: principal.value.trim() });
          await render(s);
          clear(
            document.getElementById("new-secret"),
            h(
              "div",
              { class: "secret card" },
              h("p", {}, `New key ${created.id} for `, h("b", {}, created.principal), ". It is shown only this once: store it now."),
              h("code", { class: "secret-value", id: "secret-value" }, created.secret),
            ),
          );
        } catch (err) {
          clear(out, errorBox(err));
        }
      },
    },
    h("h3", {}, "Create an API key"),
    principal,
    h("button", { type: "submit", class: "primary" }, "Create key"),
    out,
  );
}

function principalsTable(s, names, grants, keys) {
  const rows = names.map((name) => {
    const mine = grants.filter((g) => g.principal === name);
    const active = keys ? keys.filter((k) => k.principal === name && !k.revoked_at).length : null;
    return h(
      "tr",
      { dataset: { principal: name } },
      h("td", { class: "author" }, name),
      h(
        "td",
        {},
        mine.length
          ? mine.map((g) =>
              h(
                "span",
                { class: `chip perm-${g.permission}`, dataset: { prefix: g.prefix } },
                `${g.permission} ${g.prefix === "" ? "*" : g.prefix}`,
                h(
                  "button",
                  {
                    type: "button",
                    class: "link revoke-grant",
                    "aria-label": `revoke ${g.permission} on ${g.prefix || "*"} from ${name}`,
                    onclick: () => revokeGrant(s, g),
                  },
                  "×",
                ),
              ),
            )
          : h("span", { class: "muted" }, "none"),
      ),
      keys ? h("td", { class: "num" }, active) : null,
    );
  });
  return h(
    "table",
    { class: "grid principals", id: "principals" },
    h("thead", {}, h("tr", {}, h("th", {}, "Principal"), h("th", {}, "Grants"), keys ? h("th", {}, "Active keys") : null)),
    h("tbody", {}, rows),
  );
}

function keysTable(s, keys) {
  return h(
    "table",
    { class: "grid keys", id: "keys" },
    h("thead", {}, h("tr", {}, ["Id", "Principal", "Created", "Revoked", ""].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      keys.map((k) =>
        h(
          "tr",
          { class: k.revoked_at ? "revoked" : "", dataset: { key: k.id, principal: k.principal } },
          h("td", { class: "code" }, k.id),
          h("td", { class: "author" }, k.principal),
          h("td", { class: "time" }, fmtDateTime(k.created_at)),
          h("td", { class: "time" }, k.revoked_at ? fmtDateTime(k.revoked_at) : ""),
          h("td", {}, k.revoked_at ? null : h("button", { type: "button", class: "danger small revoke-key", onclick: () => revokeKey(s, k) }, "Revoke")),
        ),
      ),
    ),
  );
}

async function revokeGrant(s, g) {
  try {
    await s.session.api.delete("v1/grants", { principal: g.principal, prefix: g.prefix });
    toast(`Revoked ${g.permission} on ${g.prefix || "*"} from ${g.principal}`);
    render(s);
  } catch (err) {
    toast(err.message, "bad");
  }
}

async function revokeKey(s, k) {
  try {
    await s.session.api.delete(`v1/keys/${encodeURIComponent(k.id)}`);
    toast(`Revoked key ${k.id}`);
    render(s);
  } catch (err) {
    toast(err.message, "bad");
  }
}

// The console shell: sign-in, navigation between pages, and who is signed in.

import { Session } from "./session.js";
import { clear, errorBox, h, parseHash } from "./ui.js";
import * as feed from "./feed.js";
import * as browse from "./browse.js";
import * as search from "./search.js";
import * as health from "./health.js";
import * as access from "./access.js";

const PAGES = { feed, browse, search, health, access };
const main = document.getElementById("main");
let session = null;
let current = null; // {name, page}: the page on screen, to stop its timers and streams

function showLogin(message) {
  stopPage();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const input = h("input", {
    type: "password",
    id: "api-key",
    name: "api-key",
    autocomplete: "off",
    placeholder: "hm_…",
    required: true,
    "aria-label": "API key",
  });
  const status = h("div", { class: "login-status" }, message ? errorBox({ message }) : null);
  const form = h(
    "form",
    {
      class: "login card",
      id: "login",
      onsubmit: async (event) => {
        event.preventDefault();
        clear(status, h("span", { class: "muted" }, "Signing in…"));
        try {
          session = await Session.open(input.value.trim());
          signedIn();
        } catch (err) {
          clear(status, errorBox(err));
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "The console uses the REST API with your API key: it sees and does exactly what the key may."),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    status,
  );
  clear(main, form);
  input.focus();
}

function signedIn() {
  document.getElementById("nav").hidden = false;
  document.getElementById("nav-access").hidden = !session.isAdmin;
  document.getElementById("who").hidden = false;
  document.getElementById("who-name").textContent = session.principal;
  document.getElementById("who-grants").textContent = session.summary() || "no grants";
  route();
}

function stopPage() {
  if (current && current.page.stop) current.page.stop();
  current = null;
}

function route() {
  if (!session) return;
  const { page, params } = parseHash();
  const name = PAGES[page] && (page !== "access" || session.isAdmin) ? page : "feed";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === name);
  }
  if (current && current.name === name && current.page.update) {
    current.page.update(params); // same page, new parameters (e.g. another item)
    return;
  }
  stopPage();
  const root = h("section", { class: `page page-${name}`, id: `page-${name}` });
  clear(main, root);
  current = { name, page: PAGES[name] };
  current.page.start(root, session, params);
}

document.getElementById("sign-out").addEventListener("click", () => {
  if (session) session.close();
  session = null;
  showLogin();
});
window.addEventListener("hashchange", route);

async function boot() {
  const key = Session.storedKey();
  if (!key) {
    showLogin();
    return;
  }
  try {
    session = await Session.open(key);
    signedIn();
  } catch (err) {
    showLogin(err.status === 401 ? "The stored key is no longer valid." : err.message);
  }
}

boot();

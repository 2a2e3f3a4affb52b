// Who is signed in, and what their grants let the console offer. The server checks
// every call anyway: these only decide which controls to show.

import { Api } from "./api.js";

const STORAGE = "hivemem.console.key";
const LEVELS = { read: 1, write: 2, admin: 3 };

export function inScope(namespace, prefix) {
  return prefix === "" || namespace === prefix || namespace.startsWith(`${prefix}/`);
}

export class Session {
  constructor(key, principal, grants) {
    this.api = new Api(key);
    this.principal = principal;
    this.grants = grants; // the principal's own grants
  }

  /** Sign in with ``key``: who holds it, and that principal's grants. */
  static async open(key) {
    const api = new Api(key);
    const { principal } = await api.get("v1/whoami");
    const all = await api.get("v1/grants", { principal });
    const session = new Session(key, principal, all.filter((g) => g.principal === principal));
    sessionStorage.setItem(STORAGE, key);
    return session;
  }

  static storedKey() {
    return sessionStorage.getItem(STORAGE);
  }

  close() {
    sessionStorage.removeItem(STORAGE);
  }

  level(namespace) {
    let best = 0;
    for (const g of this.grants) {
      if (inScope(namespace, g.prefix)) best = Math.max(best, LEVELS[g.permission] || 0);
    }
    return best;
  }

  canWrite(namespace) {
    return this.level(namespace) >= LEVELS.write;
  }

  /** Admin of some prefix: may manage grants there. */
  get isAdmin() {
    return this.grants.some((g) => g.permission === "admin");
  }

  /** Admin of the whole store: principals and keys. */
  get isRootAdmin() {
    return this.grants.some((g) => g.permission === "admin" && g.prefix === "");
  }

  /** Any write grant at all (write controls outside a namespace, e.g. "new item"). */
  get writesAnywhere() {
    return this.grants.some((g) => LEVELS[g.permission] >= LEVELS.write);
  }

  summary() {
    return this.grants.map((g) => `${g.permission} ${g.prefix === "" ? "*" : g.prefix}`).join(", ");
  }
}

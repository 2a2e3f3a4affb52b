// The REST API as the console uses it: every call carries the key in the
// Authorization header (never in a URL), errors arrive as RFC 9457 problems.

const API_ROOT = new URL("..", document.baseURI); // the console lives at <root>/console/

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && problem.detail ? problem.detail : `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem || {};
  }
  get type() {
    return (this.problem.type || "").replace("/problems/", "");
  }
}

export function url(path, query) {
  const u = new URL(path.replace(/^\//, ""), API_ROOT);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) u.searchParams.append(name, String(v));
  }
  return u;
}

/** The path of one item: the namespace is a path, the key its last, encoded segment. */
export function itemPath(op, namespace, key) {
  return `v1/${op}/${namespace}/${encodeURIComponent(key)}`;
}

export class Api {
  constructor(key) {
    this.key = key;
  }

  headers(extra) {
    return { Authorization: `Bearer ${this.key}`, ...(extra || {}) };
  }

  async request(method, path, { query, body, signal } = {}) {
    const init = { method, headers: this.headers(), signal, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url(path, query), init);
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { detail: text };
      }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  get(path, query, signal) {
    return this.request("GET", path, { query, signal });
  }
  put(path, body, query) {
    return this.request("PUT", path, { body, query });
  }
  post(path, body) {
    return this.request("POST", path, { body });
  }
  delete(path, query) {
    return this.request("DELETE", path, { query });
  }
}

/** Server-sent events from a fetch response body: yields {id, event, data}. */
export async function* readEvents(body, onBytes) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let current = {};
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      if (onBytes) onBytes();
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (current.data !== undefined || current.event !== undefined) yield current;
          current = {};
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (name === "data") current.data = current.data === undefined ? value : `${current.data}\n${value}`;
          else current[name] = value;
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * The watch stream over fetch, resumed without gaps: after a dropped connection it
 * reconnects with Last-Event-ID set to the last revision it delivered, and it
 * ignores any revision it has already delivered.
 */
export class WatchStream {
  constructor(api, { namespaces, since, onBatch, onState }) {
    this.api = api;
    this.namespaces = namespaces;
    this.since = since;
    this.last = null; // the last revision handed to onBatch
    this.onBatch = onBatch;
    this.onState = onState || (() => {});
    this.stopped = false;
    this.controller = null;
    this.reconnects = 0;
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async run() {
    let delay = 250;
    while (!this.stopped) {
      try {
        await this.connectOnce();
        delay = 250; // the server ended a healthy stream: reconnect at once
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof ApiError && err.status === 401) {
          this.onState("unauthorized", err.message);
          return;
        }
        if (err instanceof ApiError && err.type === "compacted") {
          this.last = err.problem.compacted_revision - 1;
          this.onState("compacted", err.message);
          continue;
        }
        this.onState("reconnecting", err.message || String(err));
      }
      if (this.stopped) return;
      this.reconnects += 1;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  async connectOnce() {
    this.controller = new AbortController();
    const headers = this.api.headers({ Accept: "text/event-stream" });
    const query = { namespaces: this.namespaces };
    if (this.last === null) query.since = this.since;
    else headers["Last-Event-ID"] = String(this.last);
    // A half-open connection shows as silence: the server pings idle streams.
    let watchdog = null;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => this.controller.abort(), 60000);
    };
    arm();
    try {
      const response = await fetch(url("v1/watch", query), {
        headers,
        signal: this.controller.signal,
        cache: "no-store",
      });
      if (!response.ok) {
        let problem = null;
        try {
          problem = await response.json();
        } catch {
          /* not a problem body */
        }
        throw new ApiError(response.status, problem);
      }
      this.onState("live");
      for await (const event of readEvents(response.body, arm)) {
        if (event.event === "changes") {
          const revision = Number(event.id);
          if (this.last !== null && revision <= this.last) continue;
          this.onBatch(revision, JSON.parse(event.data));
          this.last = revision;
        } else if (event.event === "error") {
          const problem = JSON.parse(event.data);
          if (problem.resume_revision !== undefined) {
            this.last = Math.max(this.last ?? 0, problem.resume_revision);
          }
          throw new ApiError(problem.status || 503, problem);
        }
      }
      throw new Error("the stream ended");
    } finally {
      clearTimeout(watchdog);
    }
  }
}

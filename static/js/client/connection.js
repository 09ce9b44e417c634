// One live channel (a feed or a post) over the best transport that works, kept alive.
//
// - Transport: EventSource first; WebSocket when EventSource never connects; long-poll when
//   neither does. A transport that has connected once is kept for every reconnect, so a
//   server restart does not demote the page. `forced` (?transport=) pins one.
// - Reconnect: exponential backoff with full jitter, capped; at once on the `online` event.
// - Resume: every reconnect passes the last event id seen, so nothing is missed or repeated.
// - resync_required -> a "resync" event (the page refetches over REST);
//   token_expired or a 401 -> refresh the session, then reconnect.
//
// - Another origin: `server` ({apiUrl, wsUrl, auth}) names the server and how to get a token
//   or ticket; without it, this page's origin and its session cookie.
//
// Events dispatched: "state" {state, transport}, "event" (a contract event), "resync",
// "message" (every raw message, controls included), "signedout".
import { openPoll, openSse, openWs } from "./transports.js";

export const TRANSPORTS = ["sse", "ws", "poll"];
const CONTROL_TYPES = new Set(["connection_established", "ping", "pong", "resync_required",
  "token_expired", "error"]);
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15_000;
// A connection that lasted this long was healthy: the next failure starts the backoff anew.
// (Resetting on every open would let a server that accepts and drops at once be hammered.)
const HEALTHY_MS = 10_000;

/** Return the delay before reconnect attempt *attempt* (0, 1, 2…): full jitter, capped. */
function backoffDelay(attempt) {
  return Math.floor(Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt));
}

/**
 * Where the server is and how a stream proves who opens it. Every field is optional: the
 * defaults are this page's origin and its session cookie (the same-origin pages).
 * @typedef {object} Server
 * @property {string} [apiUrl] origin of the API, SSE and long-poll, e.g. "https://api.example"
 * @property {string} [wsUrl] origin of the WebSockets, e.g. "wss://api.example" (default:
 *   apiUrl with ws: or wss:)
 * @property {(ask: {refresh: boolean, transport: string}) =>
 *   Promise<{token?: string, ticket?: string} | null>} [auth] an access token or a stream
 *   ticket for the next request; `refresh` says the last one was refused (renew it). Null
 *   means signed out. A token is exchanged for a single-use ticket before SSE and WebSocket
 *   (no long-lived JWT in a URL) and sent as a Bearer header on long-poll.
 */

/** A refusal of the credentials (HTTP 401), or no credentials at all (signed out). */
class Refused extends Error {
  constructor(message) {
    super(message);
    this.status = 401;
  }
}

function trim(url) {
  return (url ?? "").replace(/\/+$/, "");
}

/** Return the WebSocket origin of *server*. */
function wsOrigin(server) {
  if (server.wsUrl) return trim(server.wsUrl);
  if (server.apiUrl) return trim(server.apiUrl).replace(/^http/, "ws");
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}

/** Return the URL of *channel* ({kind, postId}) on *transport*, with the query *params*. */
function streamUrl(server, transport, channel, params) {
  const path = channel.kind === "post" ? `post/${encodeURIComponent(channel.postId)}` : "feed";
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  const suffix = query.size ? `?${query}` : "";
  if (transport === "ws") return `${wsOrigin(server)}/ws/${path}${suffix}`;
  return `${trim(server.apiUrl)}/${transport === "sse" ? "stream" : "poll"}/${path}${suffix}`;
}

/**
 * Return the query parameters and headers that authenticate one stream request: nothing for
 * the cookie, `token` when one was given (the console's pasted token), else what
 * `server.auth` gives.
 */
async function credentials(server, transport, token, refresh = false) {
  if (token) return { params: { token }, headers: {} };
  if (!server.auth) return { params: {}, headers: {} };
  const given = await server.auth({ refresh, transport });
  if (!given || !(given.token || given.ticket)) throw new Refused("signed out");
  if (given.ticket) return { params: { ticket: given.ticket }, headers: {} };
  const bearer = { Authorization: `Bearer ${given.token}` };
  if (transport === "poll") return { params: {}, headers: bearer };
  const response = await fetch(`${trim(server.apiUrl)}/api/auth/stream-ticket`, {
    method: "POST", headers: { ...bearer, Accept: "application/json" },
  });
  if (response.status === 401) throw new Refused("the token was refused");
  if (!response.ok) throw Object.assign(new Error("no stream ticket"), { status: response.status });
  return { params: { ticket: (await response.json()).ticket }, headers: {} };
}

/**
 * Open *transport* on *channel*; see transports.js for the handler interface. The handle
 * comes at once; a transport that needs a ticket first opens when it has one, and a refusal
 * of the credentials closes it with status 401.
 *
 * @param {{lastEventId?: string, token?: string, server?: Server}} options
 */
export function openTransport(transport, channel, { lastEventId, token, server = {} }, handlers) {
  if (transport === "poll") {
    const request = async (cursor, timeout) => {
      const { params, headers } = await credentials(server, "poll", token);
      return { url: streamUrl(server, "poll", channel, { cursor, timeout, ...params }), headers };
    };
    return openPoll(request, handlers, { cursor: lastEventId });
  }
  let inner = null;
  let closed = false;
  credentials(server, transport, token).then(({ params }) => {
    if (closed) return;
    const url = streamUrl(server, transport, channel, { last_event_id: lastEventId, ...params });
    inner = transport === "ws" ? openWs(url, handlers) : openSse(url, handlers);
  }, (error) => {
    if (!closed) handlers.onclose(false, error.status, { message: error.message });
  });
  return {
    close() { closed = true; inner?.close(); },
    send(message) { return inner?.send?.(message) ?? false; },
    sendText(text) { return inner?.sendText?.(text) ?? false; },
  };
}

export class Connection extends EventTarget {
  /**
   * @param {{kind: string, postId?: string}} channel
   * @param {{forced?: string, lastEventId?: string, pingSeconds?: number, server?: Server}} options
   *   `server`: where the server is and how to authenticate (default: this origin, cookies)
   */
  constructor(channel, { forced = "", lastEventId = "", pingSeconds = 15, server = {} } = {}) {
    super();
    this.channel = channel;
    this.server = server;
    this.forced = TRANSPORTS.includes(forced) ? forced : "";
    this.transport = this.forced || "sse";
    this.lastEventId = lastEventId;
    this.state = "connecting";
    this.attempt = 0;
    this.openedAt = 0;
    this.proven = false;  // a transport connected: keep it
    this.handle = null;
    this.timer = 0;
    this.watchdog = 0;
    // No message (not even a ping) for this long means a half-open connection.
    this.silenceMs = Math.max(3 * pingSeconds, 5) * 1000;
    this.expired = false;
    this.stopped = true;
    this.generation = 0;  // bumps on every connect: late callbacks of older ones are ignored
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.goOffline();
  }

  /** Connect, and keep connected until stop(). */
  start() {
    this.stopped = false;
    addEventListener("online", this.onOnline);
    addEventListener("offline", this.onOffline);
    this.setState("connecting");
    this.connect();
  }

  /** Close the transport and stop reconnecting. */
  stop() {
    this.stopped = true;
    removeEventListener("online", this.onOnline);
    removeEventListener("offline", this.onOffline);
    this.drop();
  }

  setState(state) {
    this.state = state;
    this.emit("state", { state, transport: this.transport });
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  drop() {
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    this.handle?.close();
    this.handle = null;
  }

  connect() {
    this.drop();
    if (this.stopped) return;
    if (!navigator.onLine) return this.goOffline();
    if (this.state === "offline" || this.state === "connected") this.setState("reconnecting");
    this.expired = false;
    const generation = ++this.generation;
    const options = { lastEventId: this.lastEventId, server: this.server };
    this.handle = openTransport(this.transport, this.channel, options, {
      onopen: () => this.opened(),
      onmessage: (message, raw) => this.received(message, raw),
      onclose: (opened, status) => this.closed(generation, opened, status),
    });
    this.armWatchdog();
  }

  opened() {
    this.openedAt = Date.now();
    this.proven = true;
    this.setState("connected");
    this.armWatchdog();
  }

  armWatchdog() {
    clearTimeout(this.watchdog);
    // Long-poll guards itself with a per-request deadline.
    if (this.transport === "poll") return;
    const generation = this.generation;
    this.watchdog = setTimeout(() => this.closed(generation, true), this.silenceMs);
  }

  received(message, raw) {
    this.armWatchdog();
    if (message.id) this.lastEventId = message.id;
    this.emit("message", { message, raw });
    if (message.type === "token_expired") this.expired = true;
    else if (message.type === "resync_required") this.emit("resync", message);
    else if (!CONTROL_TYPES.has(message.type)) this.emit("event", message);
  }

  async closed(generation, opened, status) {
    if (generation !== this.generation || this.stopped) return;
    this.drop();
    if (!navigator.onLine) return this.goOffline();
    if (opened && Date.now() - this.openedAt >= HEALTHY_MS) this.attempt = 0;
    this.setState("reconnecting");
    const expired = this.expired || status === 401 || (!opened && await this.unauthorized());
    if (generation !== this.generation || this.stopped) return;  // reconnected meanwhile
    if (expired) {
      if (await this.renew()) return this.connect();
      this.stop();
      this.setState("offline");
      return this.emit("signedout", {});
    }
    if (!opened && !this.proven && !this.forced) {
      // This transport never connected here: try the next one.
      this.transport = TRANSPORTS[(TRANSPORTS.indexOf(this.transport) + 1) % TRANSPORTS.length];
    }
    this.timer = setTimeout(() => this.connect(), backoffDelay(this.attempt++));
  }

  /** Renew the credentials after a refusal; resolve to whether there are new ones. */
  async renew() {
    if (!this.server.auth) {
      // Imported only for the cookie session of the same-origin pages: a copy of client/ in
      // a front end elsewhere needs no session.js (which reads this site's <body>).
      const { refreshSession } = await import("../session.js");
      return refreshSession();
    }
    try {
      const given = await this.server.auth({ refresh: true, transport: this.transport });
      return Boolean(given && (given.token || given.ticket));
    } catch {
      return false;
    }
  }

  /** Return whether the session is what failed (EventSource and WebSocket hide the 401). */
  async unauthorized() {
    // With server.auth, a refused token shows when its ticket is asked for (a 401 there); a
    // ticket given by the caller cannot be checked again.
    if (this.server.auth) return false;
    try {
      return (await fetch("/api/me", { credentials: "same-origin" })).status === 401;
    } catch {
      return false;  // the server is unreachable: back off and retry
    }
  }

  reconnectNow() {
    if (this.stopped) return;
    this.attempt = 0;
    this.setState("reconnecting");
    this.connect();
  }

  goOffline() {
    if (this.stopped) return;
    this.generation++;
    this.drop();
    this.setState("offline");
  }
}

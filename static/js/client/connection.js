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
// Events dispatched: "state" {state, transport}, "event" (a contract event), "resync",
// "message" (every raw message, controls included), "signedout".
import { refreshSession } from "../session.js";
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

/** Return the URL of *channel* ({kind, postId}) on *transport*, with the query *params*. */
function streamUrl(transport, channel, params) {
  const path = channel.kind === "post" ? `post/${encodeURIComponent(channel.postId)}` : "feed";
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  const suffix = query.size ? `?${query}` : "";
  if (transport === "ws") {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws/${path}${suffix}`;
  }
  return `/${transport === "sse" ? "stream" : "poll"}/${path}${suffix}`;
}

/** Open *transport* on *channel*; see transports.js for the handler interface. */
export function openTransport(transport, channel, { lastEventId, token }, handlers) {
  if (transport === "poll") {
    const url = (cursor, timeout) => streamUrl("poll", channel, { cursor, timeout, token });
    return openPoll(url, handlers, { cursor: lastEventId });
  }
  const url = streamUrl(transport, channel, { last_event_id: lastEventId, token });
  return transport === "ws" ? openWs(url, handlers) : openSse(url, handlers);
}

export class Connection extends EventTarget {
  /**
   * @param {{kind: string, postId?: string}} channel
   * @param {{forced?: string, lastEventId?: string, pingSeconds?: number}} options
   */
  constructor(channel, { forced = "", lastEventId = "", pingSeconds = 15 } = {}) {
    super();
    this.channel = channel;
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
    this.handle = openTransport(this.transport, this.channel, { lastEventId: this.lastEventId }, {
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
      if (await refreshSession()) return this.connect();
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

  /** Return whether the session is what failed (EventSource and WebSocket hide the 401). */
  async unauthorized() {
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

// Tabs of one browser that show the same channel share one connection: browsers allow six
// HTTP/1.1 connections per host across all tabs. The tab holding a Web Lock named after the
// channel connects and relays what it receives over a BroadcastChannel; when it closes, the
// lock passes to a waiting tab, which connects and resumes from the last relayed event id.
import { Connection } from "./connection.js";

// Raw "message"s stay with the leader: only the console shows them, and it connects itself.
const RELAYED = ["state", "event", "resync", "signedout"];
const RECENT_MAX = 200;

/**
 * Return an EventTarget that emits a {@link Connection}'s "state", "event", "resync" and
 * "signedout" for *channel*, through one connection per browser.
 *
 * @param {string} key what makes two tabs' channels the same (user, channel, transport)
 * @param {{kind: string, postId?: string}} channel
 * @param {object} options the {@link Connection} options (lastEventId: where this page starts)
 */
export function sharedConnection(key, channel, options) {
  if (!navigator.locks || !window.BroadcastChannel) {
    const connection = new Connection(channel, options);
    connection.start();
    return connection;
  }
  return new SharedConnection(key, channel, options);
}

class SharedConnection extends EventTarget {
  constructor(key, channel, options) {
    super();
    this.options = options;
    this.lastEventId = options.lastEventId || "";
    this.leader = null;
    this.id = Math.random().toString(36).slice(2);
    this.recent = [];  // the leader's last events, for tabs that join late
    this.bus = new BroadcastChannel(`realtime:${key}`);
    this.bus.onmessage = ({ data }) => this.heard(data);
    // Until a leader answers, this tab is connecting.
    this.emit("state", { state: "connecting", transport: options.forced || "sse" });
    this.bus.postMessage({ kind: "hello", from: this.id, after: this.lastEventId });
    navigator.locks.request(`realtime:${key}`, () => this.lead(channel));
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  /** Hold the lock for the life of this page, and the connection with it. */
  lead(channel) {
    const connection = new Connection(channel, { ...this.options, lastEventId: this.lastEventId });
    this.leader = connection;
    for (const name of RELAYED) {
      connection.addEventListener(name, ({ detail }) => {
        if (name === "event" || name === "resync") this.remember(name, detail);
        this.emit(name, detail);
        this.bus.postMessage({ kind: "relay", name, detail });
      });
    }
    connection.start();
    // Never resolves: the browser releases the lock when this page goes away.
    return new Promise(() => {});
  }

  remember(name, detail) {
    this.recent.push({ name, detail });
    if (this.recent.length > RECENT_MAX) this.recent.shift();
  }

  heard(data) {
    if (this.leader) {
      if (data.kind === "hello") this.welcome(data.from, data.after);
      return;
    }
    if (data.kind !== "relay" || (data.to && data.to !== this.id)) return;
    if (data.name === "event" && data.detail.id) this.lastEventId = data.detail.id;
    this.emit(data.name, data.detail);
  }

  /** Tell tab *to*, just opened, the state and what it missed since its page was read. */
  welcome(to, after) {
    const send = (name, detail) => this.bus.postMessage({ kind: "relay", to, name, detail });
    const { state, transport, lastEventId } = this.leader;
    send("state", { state, transport });
    if (!after || after === lastEventId) return;
    const start = this.recent.findIndex(({ detail }) => detail.id === after);
    if (start === -1) {
      // Its page predates what this tab remembers: it must refetch.
      send("resync", { type: "resync_required" });
      return;
    }
    for (const { name, detail } of this.recent.slice(start + 1)) send(name, detail);
  }
}

/**
 * Return a bus between this viewer's tabs of this origin, for what only this browser knows:
 * the viewer's own actions (their pressed reaction is not in any event). `tell(name,
 * detail)` reaches the other tabs, which get it as a *name* event; none where the browser
 * has no BroadcastChannel.
 *
 * @param {string} viewerId
 */
export function viewerTabs(viewerId) {
  const tabs = new EventTarget();
  if (!window.BroadcastChannel) {
    tabs.tell = () => {};
    return tabs;
  }
  const bus = new BroadcastChannel(`realtime-viewer:${viewerId}`);
  bus.onmessage = ({ data }) => tabs.dispatchEvent(new CustomEvent(data.name, { detail: data.detail }));
  tabs.tell = (name, detail) => bus.postMessage({ name, detail });
  return tabs;
}

// The /realtime console: one channel over one chosen transport, every raw message logged
// with its arrival time. It talks to the transport directly (no fallback, no reconnect),
// so what you see is exactly what that transport delivers, and how it ended: a WebSocket's
// close code and reason, or the HTTP refusal (401, 403, 404, 429) with its JSON error.
import { openTransport } from "../client/connection.js";
import { showConnection } from "../indicator.js";

const LOG_MAX = 500;

/**
 * Return why a stream was refused before it opened: EventSource and WebSocket hide the HTTP
 * answer, so ask the channel's SSE URL with fetch (same credentials, post and stream-limit
 * checks; a refusal answers before any stream) and read the contract's error envelope.
 * Resolves to a sentence, or "" when the server accepts it now.
 */
async function refusal(channel, token) {
  const path = channel.kind === "post" ? `post/${encodeURIComponent(channel.postId)}` : "feed";
  const url = `/stream/${path}${token ? `?token=${encodeURIComponent(token)}` : ""}`;
  const abort = new AbortController();
  try {
    const response = await fetch(url, { credentials: "same-origin", signal: abort.signal,
      headers: { Accept: "application/json" } });
    if (response.ok) return "";
    const error = (await response.json().catch(() => null))?.error ?? {};
    return `refused: HTTP ${response.status} ${error.code ?? ""}: ${error.message ?? ""}`;
  } catch {
    return "";
  } finally {
    abort.abort();  // an accepted stream must not stay open
  }
}

/** Return the sentence that says how a transport ended. */
function ending(opened, status, detail) {
  const parts = [`closed${opened ? "" : " before it opened"}`];
  if (detail?.code !== undefined && typeof detail.code === "number") {
    parts.push(`code ${detail.code}${detail.reason ? ` (${detail.reason})` : ""}`);
  }
  if (status) {
    parts.push(`HTTP ${status}${detail?.code && typeof detail.code === "string" ? ` ${detail.code}` : ""}`
      + `${detail?.message ? `: ${detail.message}` : ""}`);
  }
  return parts.join(", ");
}

/** Run the console page. */
export function startConsole() {
  const form = document.querySelector("[data-role=console-form]");
  const log = document.querySelector("[data-role=console-log]");
  const button = (action) => form.querySelector(`[data-action=${action}]`);
  const SENDERS = ["ping", "typing", "send"];
  let handle = null;

  const write = (text, note = false) => {
    const item = document.createElement("li");
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toISOString().slice(11, 23);
    const body = document.createElement("code");
    body.textContent = text;
    if (note) body.className = "note";
    item.append(time, body);
    log.append(item);
    while (log.children.length > LOG_MAX) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  };
  const setConnected = (connected, transport) => {
    button("connect").disabled = connected;
    button("disconnect").disabled = !connected;
    for (const action of SENDERS) button(action).disabled = !connected || transport !== "ws";
  };
  const disconnect = () => {
    handle?.close();
    handle = null;
    setConnected(false);
    showConnection("offline", null);
  };
  const send = (text) => {
    if (handle?.sendText?.(text)) write(`sent: ${text}`, true);
    else write("not sent: the WebSocket is not open", true);
  };

  showConnection("offline", form.transport.value, "Not connected");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    disconnect();
    const choice = Object.fromEntries(new FormData(form));
    const channel = { kind: choice.channel, postId: choice.post_id.trim() };
    if (channel.kind === "post" && !channel.postId) return write("Enter a post id first.", true);
    // A pasted token goes in the URL, where the server prefers it to the session cookie.
    const token = choice.auth === "token" ? choice.token.trim() : "";
    if (choice.auth === "token" && !token) return write("Paste an access token first.", true);
    const lastEventId = choice.last_event_id.trim();
    const transport = choice.transport;
    write(`connecting: ${channel.kind}${channel.postId ? ` ${channel.postId}` : ""} over ${transport}`
      + `${token ? " with the pasted token" : ""}${lastEventId ? ` after ${lastEventId}` : ""}`, true);
    showConnection("connecting", transport);
    setConnected(true, transport);
    const mine = openTransport(transport, channel, { token, lastEventId }, {
      onopen: () => { write("open", true); showConnection("connected", transport); },
      onmessage: (_message, raw) => write(raw),
      onclose: async (opened, status, detail) => {
        if (handle === mine) {
          handle = null;
          setConnected(false);
          showConnection("offline", transport);
        }
        const why = !opened && !status && transport !== "poll"
          ? await refusal(channel, token) : "";
        write(why ? `${ending(opened, status, detail)}; ${why}` : ending(opened, status, detail), true);
      },
    });
    handle = mine;
  });
  button("disconnect").addEventListener("click", () => { disconnect(); write("disconnected", true); });
  button("ping").addEventListener("click", () => send(JSON.stringify({ type: "ping", timestamp: Date.now() })));
  button("typing").addEventListener("click", () => send(JSON.stringify({ type: "typing" })));
  button("send").addEventListener("click", () => send(form.frame.value));
  button("clear").addEventListener("click", () => log.replaceChildren());
}

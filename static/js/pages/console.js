// The /realtime console: one channel over one chosen transport, every raw message logged
// with its arrival time. It talks to the transport directly (no fallback, no reconnect),
// so what you see is exactly what that transport delivers.
import { openTransport } from "../client/connection.js";
import { showConnection } from "../indicator.js";

const LOG_MAX = 500;

/** Run the console page. */
export function startConsole() {
  const form = document.querySelector("[data-role=console-form]");
  const log = document.querySelector("[data-role=console-log]");
  const button = (action) => form.querySelector(`[data-action=${action}]`);
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
    button("ping").disabled = !connected || transport !== "ws";
  };
  const disconnect = () => {
    handle?.close();
    handle = null;
    setConnected(false);
    showConnection("offline", null);
  };

  showConnection("offline", form.transport.value, "Not connected");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    disconnect();
    const choice = Object.fromEntries(new FormData(form));
    const channel = { kind: choice.channel, postId: choice.post_id.trim() };
    if (channel.kind === "post" && !channel.postId) return write("Enter a post id first.", true);
    const token = choice.auth === "token" ? choice.token.trim() : "";
    const transport = choice.transport;
    write(`connecting: ${channel.kind}${channel.postId ? ` ${channel.postId}` : ""} over ${transport}`, true);
    showConnection("connecting", transport);
    setConnected(true, transport);
    handle = openTransport(transport, channel, { token }, {
      onopen: () => { write("open", true); showConnection("connected", transport); },
      onmessage: (_message, raw) => write(raw),
      onclose: (opened, status) => {
        write(`closed${opened ? "" : " before it opened"}${status ? ` (HTTP ${status})` : ""}`, true);
        handle = null;
        setConnected(false);
        showConnection("offline", transport);
      },
    });
  });
  button("disconnect").addEventListener("click", () => { disconnect(); write("disconnected", true); });
  button("ping").addEventListener("click", () => handle?.send?.({ type: "ping", timestamp: Date.now() }));
  button("clear").addEventListener("click", () => log.replaceChildren());
}

// The connection indicator in the header: data-connection-state and data-transport are
// stable hooks; the label says the same in words.
const STATES = {
  connecting: "Connecting…",
  connected: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};
const TRANSPORT_NAMES = { sse: "SSE", ws: "WebSocket", poll: "long-poll" };

/** Show *state* (connecting, connected, reconnecting, offline) over *transport*. */
export function showConnection(state, transport, note = "") {
  const indicator = document.querySelector("[data-role=connection]");
  if (!indicator) return;
  indicator.dataset.connectionState = state;
  if (transport) indicator.dataset.transport = transport;
  const label = indicator.querySelector("[data-role=connection-label]");
  label.textContent = note || `${STATES[state]} · ${TRANSPORT_NAMES[indicator.dataset.transport]}`;
}

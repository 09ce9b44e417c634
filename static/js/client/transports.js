// The three transports behind one small interface, so the connection logic never cares
// which one it drives:
//   open(url, { onopen(), onmessage(message, raw), onclose(opened, status, detail) })
//     -> { close(), send?(object), sendText?(text) }
// onclose is called once, unless close() was called first; `opened` says whether the
// transport ever connected (the fallback decision), `status` is an HTTP status when known,
// `detail` the WebSocket's {code, reason} or a refusal's JSON error {code, message}.

/** Every message type a stream may carry: SSE delivers named events only to named listeners. */
const MESSAGE_TYPES = [
  "new_post", "post_updated", "post_deleted", "post_reaction", "new_comment",
  "comment_deleted", "comment_like", "comment_count", "typing", "notification",
  "connection_established", "ping", "pong", "resync_required", "token_expired", "error",
];

function parse(raw) {
  try {
    const message = JSON.parse(raw);
    return message && typeof message === "object" ? message : null;
  } catch {
    return null;
  }
}

/** Open a Server-Sent Events stream (cookies travel with a same-origin EventSource only). */
export function openSse(url, handlers) {
  const source = new EventSource(url);
  let opened = false;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    source.close();  // we reconnect ourselves, with backoff and the last event id
    handlers.onclose(opened);
  };
  const receive = (event) => {
    // The server's "error" messages share their name with EventSource's own error event;
    // only a message carries data.
    if (event.data === undefined) return finish();
    const message = parse(event.data);
    if (message) handlers.onmessage(message, event.data);
  };
  source.onopen = () => { opened = true; handlers.onopen(); };
  source.onmessage = receive;
  for (const type of MESSAGE_TYPES) source.addEventListener(type, receive);
  return { close() { done = true; source.close(); } };
}

/** Open a WebSocket (the handshake carries the cookies; Origin is this page's). */
export function openWs(url, handlers) {
  const socket = new WebSocket(url);
  let opened = false;
  let done = false;
  socket.onopen = () => { opened = true; handlers.onopen(); };
  socket.onmessage = (event) => {
    const message = parse(event.data);
    if (message) handlers.onmessage(message, event.data);
  };
  socket.onclose = ({ code, reason }) => {
    if (done) return;
    done = true;
    handlers.onclose(opened, undefined, { code, reason });
  };
  const sendText = (text) => {
    if (socket.readyState !== WebSocket.OPEN) return false;
    socket.send(text);
    return true;
  };
  return {
    close() { done = true; socket.close(); },
    send: (message) => sendText(JSON.stringify(message)),
    sendText,
  };
}

/**
 * Long-poll: ask for events after the cursor, again and again. *request(cursor, timeout)*
 * resolves to each request's {url, headers}; when it rejects, the poll ends with the
 * error's status. The first asks with a 1 s timeout, so the page shows "connected"
 * at once instead of after a whole poll.
 */
export function openPoll(request, handlers, { cursor = "", timeout = 25 } = {}) {
  const abort = new AbortController();
  let done = false;
  (async () => {
    let opened = false;
    let status;
    let detail;
    let wait = 1;
    while (!done) {
      // A poll that hangs past its own timeout is a dead connection.
      const deadline = setTimeout(() => abort.abort(), (wait + 15) * 1000);
      try {
        const { url, headers } = await request(cursor, wait);
        if (done) return;
        const response = await fetch(url, {
          credentials: "same-origin", cache: "no-store", signal: abort.signal,
          headers: { Accept: "application/json", ...headers },
        });
        status = response.status;
        if (!response.ok) {
          detail = (await response.json().catch(() => null))?.error;
          break;
        }
        const body = await response.json();
        if (!opened) { opened = true; handlers.onopen(); }
        for (const message of body.events ?? []) {
          if (done) return;
          handlers.onmessage(message, JSON.stringify(message));
        }
        cursor = body.cursor ?? cursor;
        wait = timeout;
      } catch (error) {
        status = error.status ?? status;
        break;
      } finally {
        clearTimeout(deadline);
      }
    }
    if (!done) {
      done = true;
      handlers.onclose(opened, status, detail);
    }
  })();
  return { close() { done = true; abort.abort(); } };
}

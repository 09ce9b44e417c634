// A front end on another origin: sign in over the JSON API, keep the tokens in memory, and
// follow the feed with the site's own browser client (SSE, then WebSocket, then long-poll;
// resume, backoff, and one connection shared by this origin's tabs).
//
// client/ is a copy of the server's static/js/client/ (see README.md).
import { sharedConnection } from "./client/shared.js";

const form = document.querySelector("[data-role=sign-in]");
const error = document.querySelector("[data-role=error]");
const indicator = document.querySelector("[data-role=connection]");
const posts = document.querySelector("[data-role=posts]");
const query = new URLSearchParams(location.search);
for (const name of ["api", "transport"]) if (query.has(name)) form[name].value = query.get(name);

/** Call the API at *api* as JSON; throw the server's error message on a refusal. */
async function call(api, method, path, { body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${api}${path}`, { method, headers, body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error?.message ?? `HTTP ${response.status}`);
  return data;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const api = form.api.value.replace(/\/+$/, "");
  let session;
  try {
    session = await call(api, "POST", "/api/auth/login",
      { body: { username: form.username.value, password: form.password.value } });
  } catch (failure) {
    error.textContent = `Sign-in failed: ${failure.message}`;
    return;
  }
  // The client asks for a token before each stream; on refresh: true the last one was refused.
  const auth = async ({ refresh }) => {
    if (refresh) {
      try {
        const renewed = await call(api, "POST", "/api/auth/refresh", { token: session.refresh_token });
        session = { ...session, ...renewed };
      } catch {
        return null;  // signed out
      }
    }
    return { token: session.access_token };
  };
  const transport = form.transport.value;
  const live = sharedConnection(`${api}:${session.user.id}:${transport}`, { kind: "feed" },
    { forced: transport, server: { apiUrl: api, auth } });
  live.addEventListener("state", ({ detail }) => {
    indicator.dataset.connectionState = detail.state;
    indicator.dataset.transport = detail.transport ?? "";
    indicator.textContent = `${detail.state} (${detail.transport})`;
  });
  live.addEventListener("event", ({ detail: message }) => {
    if (message.type !== "new_post") return;
    const item = document.createElement("li");
    item.dataset.postId = message.post.id;
    item.textContent = `${message.post.author.username}: ${message.post.content}`;
    posts.prepend(item);
  });
  live.addEventListener("signedout", () => { error.textContent = "Signed out: sign in again."; });
  form.hidden = true;
});

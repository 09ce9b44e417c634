// The session as the browser holds it: HttpOnly JWT cookies we never read, CSRF cookies we
// echo back, and a refresh that renews the access cookie before (or after) it expires.

/** Return the value of a readable cookie, or "". */
export function cookie(name) {
  const prefix = `${name}=`;
  const found = document.cookie.split("; ").find((part) => part.startsWith(prefix));
  return found ? decodeURIComponent(found.slice(prefix.length)) : "";
}

// The CSRF cookies' names: "__Host-" ones when the server marks its cookies Secure (the page
// says which, on <body>), plain ones on the development server over HTTP.
const CSRF_COOKIE = document.body.dataset.csrfCookie || "csrf_access_token";
const REFRESH_CSRF_COOKIE = document.body.dataset.refreshCsrfCookie || "csrf_refresh_token";

/** Return the CSRF token to send with an unsafe request of the signed-in session, or "". */
export function csrfToken() {
  return cookie(CSRF_COOKIE);
}

let refreshing = null;
let refreshTimer = 0;

/** Run *task* while no other tab of this site refreshes (where the browser has Web Locks). */
function alone(task) {
  return navigator.locks ? navigator.locks.request("feed-session-refresh", task) : task();
}

/** Exchange the refresh cookie for new access and refresh cookies; resolve to whether it worked. */
export function refreshSession() {
  // One refresh at a time: several streams may report token_expired together. Across tabs
  // too: a refresh token is good for one refresh, and a second use of it signs the session
  // out, so a tab waits for the other's refresh and then sends the cookies it left.
  refreshing ??= alone(() => fetch("/api/auth/refresh", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-TOKEN": cookie(REFRESH_CSRF_COOKIE), Accept: "application/json" },
  }))
    .then(async (response) => {
      if (!response.ok) return false;
      const { access_token: token } = await response.json();
      scheduleRefresh(expiryOf(token));
      return true;
    })
    .catch(() => false)
    .finally(() => { refreshing = null; });
  return refreshing;
}

/**
 * On a page rendered signed out, renew a session whose access cookie expired (the browser
 * drops it) while its refresh cookie lives on. Resolves to whether the page should reload.
 */
export async function resumeSession() {
  if (!cookie(REFRESH_CSRF_COOKIE)) return false;
  // A page that still renders signed out after a renewal must not reload forever.
  const last = Number(sessionStorage.getItem("session-resumed-at")) || 0;
  if (Date.now() - last < 10_000) return false;
  sessionStorage.setItem("session-resumed-at", String(Date.now()));
  if (await refreshSession()) return true;
  // Revoked or expired for good: forget it, or every page would try again.
  // A "__Host-" cookie can only be replaced by one that is Secure too.
  const secure = REFRESH_CSRF_COOKIE.startsWith("__") ? "; Secure" : "";
  document.cookie = `${REFRESH_CSRF_COOKIE}=; Max-Age=0; Path=/; SameSite=Lax${secure}`;
  return false;
}

/** Return the ``exp`` claim (seconds) of a JWT, or 0. The token itself is not kept. */
function expiryOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return Number(JSON.parse(atob(payload)).exp) || 0;
  } catch {
    return 0;
  }
}

/** Refresh the session a minute before *expiresAt* (epoch seconds), so forms keep working. */
export function scheduleRefresh(expiresAt) {
  clearTimeout(refreshTimer);
  if (!expiresAt) return;
  const due = Math.max(5_000, expiresAt * 1000 - Date.now() - 60_000);
  refreshTimer = setTimeout(refreshSession, due);
}

/**
 * Call the JSON API with the session cookie and the CSRF header; on a 401, refresh the
 * session once and retry. *extraHeaders* go with it (an Idempotency-Key). Resolves to the
 * Response (network errors reject).
 */
export async function api(method, path, body, extraHeaders = {}) {
  const send = () => {
    const headers = { Accept: "application/json", ...extraHeaders };
    if (method !== "GET") headers["X-CSRF-TOKEN"] = csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  const response = await send();
  if (response.status === 401 && await refreshSession()) return send();
  return response;
}

"""Security headers on every answer, and where a request comes from.

One ``after_request`` hook rather than flask-talisman: the headers are a fixed set (only
``connect-src`` names the request's host), and Talisman's defaults (an HTTPS redirect, HSTS, its
own cookie settings) would have to be switched off for ``make run``'s plain-HTTP server and for
TLS ended at nginx, leaving a dependency for five lines of headers.
"""
import re

from flask import request
from flask_cors import CORS

# Pages load only our own scripts and stylesheets (no inline <script>, <style> or style=""),
# send forms only to us, and may not be framed. Streams are same-origin: EventSource and
# fetch are covered by 'self'; WebSocket is named too (see _connect_src).
_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
           "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
           "frame-ancestors 'none'; connect-src {connect}")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Cross-origin requests get the origin only. Not no-referrer: under it a browser sends
    # "Origin: null" with our own form posts, and Origin tells where a post comes from.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}


def own_origin():
    """Return this server's origin as the browser sees it (after ProxyFix, when configured).

    The same rule as the WebSocket handshake's Origin check.
    """
    return f"{request.scheme}://{request.host}"


def _connect_src():
    # CSP 3 lets 'self' match ws(s): to the same host, but browsers before it (older Safari)
    # do not: name the page's own WebSocket origin. A Host header that is not a plain host
    # name cannot be put in the header safely; 'self' is then all there is.
    if not _HOST.fullmatch(request.host):
        return "'self'"
    scheme = "wss" if request.scheme == "https" else "ws"
    return f"'self' {scheme}://{request.host}"


def add_security_headers(response):
    """Give *response* the Content-Security-Policy and the other security headers.

    Headers the route set itself are kept.
    """
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _POLICY.format(connect=_connect_src()))
    for name, value in HEADERS.items():
        headers.setdefault(name, value)
    return response


def cross_site_reason():
    """Return why the current unsafe request comes from another site, or None.

    What the browser says is trusted: ``Sec-Fetch-Site`` (``cross-site``, or ``same-site``:
    another port or subdomain of this host is not us) and ``Origin`` (present and not ours,
    including ``null`` from sandboxed frames and privacy modes). A request with neither is
    not from a current browser; the forms that matter check a token for it.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site in ("cross-site", "same-site"):
        return f"the browser reports that it was sent from another site (Sec-Fetch-Site: {site})"
    origin = request.headers.get("Origin")
    if origin is not None and origin != own_origin():
        return f"it was sent from {origin}, not from {own_origin()}"
    return None


def browser_vouches():
    """Return whether the browser said where the request comes from (Sec-Fetch-Site, Origin)."""
    return "Sec-Fetch-Site" in request.headers or "Origin" in request.headers


#: Routes a front end on another origin may call (pages and WebSockets are not among them:
#: the WebSocket handshake checks Origin itself, in app/transports/websocket.py).
CORS_ROUTES = (r"/api/.*", r"/stream/.*", r"/poll/.*")
CORS_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key",
                "X-CSRF-TOKEN", "Accept"]
#: What a script on another origin may read besides the safelisted headers: how long to back
#: off after a 429, and the rate-limit budget.
CORS_EXPOSED = ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


def init_cors(app):
    """Answer CORS, preflight included, for exactly the origins in ``ALLOWED_ORIGINS``.

    Flask-CORS adds the headers in an after-request hook and to error answers (401, 404, 422,
    429…), so a script on an allowed origin can read why it was refused. Other origins get no
    CORS header at all. ``Access-Control-Allow-Credentials`` only when the operator set
    ``CORS_ALLOW_CREDENTIALS``: otherwise the auth cookie is not even read for such requests
    (:class:`ForeignOriginCookies`), and Bearer tokens and stream tickets are the way in.
    """
    origins = app.config["ALLOWED_ORIGINS"]
    if origins:
        CORS(app, resources={route: {} for route in CORS_ROUTES}, origins=origins,
             methods=CORS_METHODS, allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED,
             supports_credentials=app.config["CORS_ALLOW_CREDENTIALS"],
             max_age=app.config["CORS_MAX_AGE"], vary_header=True)
    app.wsgi_app = ForeignOriginCookies(app.wsgi_app, origins,
                                        app.config["CORS_ALLOW_CREDENTIALS"])


class ForeignOriginCookies:
    """WSGI middleware: a request that says it comes from another origin is read without its
    cookies, unless that origin is allowed and the operator let credentials cross origins.

    A browser attaches this site's cookies to a fetch or WebSocket from another port or
    subdomain of the same site; without this, such a request would act as the signed-in user
    even when the answer is hidden from the script (an SSE slot taken, a WebSocket opened
    from an allowed origin). Unsafe form posts from other sites are refused before that
    anyway (app/pages/guard.py); with credentials on, CSRF double-submit still applies.
    """

    def __init__(self, app, allowed, credentials):
        self.app = app
        self.trusted = set(allowed) if credentials else set()

    def __call__(self, environ, start_response):
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and "HTTP_COOKIE" in environ and origin not in self.trusted:
            own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
            if origin != own:
                del environ["HTTP_COOKIE"]
        return self.app(environ, start_response)


def init_app(app):
    """Add the security headers to every answer: pages, API, errors and streams; and CORS."""
    app.after_request(add_security_headers)
    init_cors(app)

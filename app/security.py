"""Security headers on every answer, and where a request comes from.

One ``after_request`` hook rather than flask-talisman: the headers are a fixed set (only
``connect-src`` names the request's host), and Talisman's defaults (an HTTPS redirect, HSTS, its
own cookie settings) would have to be switched off for ``make run``'s plain-HTTP server and for
TLS ended at nginx, leaving a dependency for five lines of headers.
"""
import re

from flask import request

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


def init_app(app):
    """Add the security headers to every answer: pages, API, errors and streams."""
    app.after_request(add_security_headers)

"""Errors of page routes as HTML pages for people; JSON for clients that prefer it.

Handlers registered on the blueprint win over the app's JSON handlers, but only for errors
raised by a page view: unknown URLs, the API and the streams keep the contract's envelope.
"""
import logging
import time

from flask import g, render_template, request
from flask_jwt_extended.exceptions import CSRFError
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from app.broker import BrokerUnavailable
from app.errors import ApiError, RateLimited, Unavailable, error_response
from app.pages import bp
from app.pages.guard import SAFE_METHODS
from app.pages.viewer import UNCHECKED
from app.ratelimit import limiter

log = logging.getLogger(__name__)

_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict",
           422: "Check your input", 429: "Slow down", 500: "Something went wrong",
           503: "Temporarily unavailable"}


def _wants_html():
    """Return whether the client prefers HTML (browsers) over JSON (scripts, curl)."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _page(status, message, error):
    if not _wants_html():
        return error_response(error)
    if request.method not in SAFE_METHODS and g.get("viewer") is None:
        # A refused or failed form: looking for the viewer would check its CSRF token again
        # (a second error inside this one), and "signed out" would make the page renew the
        # session and load again.
        g.viewer, g.session_state = None, UNCHECKED
    html = render_template("pages/error.html", status=status, message=message,
                           title=_TITLES.get(status, "Error"))
    return html, status, error.headers


@bp.errorhandler(ApiError)
def api_error(error):
    """Render an error raised by a service (404 post, 403 not yours…)."""
    return _page(error.status, error.message, error)


@bp.errorhandler(CSRFError)
def csrf_error(_error):
    """Explain a form posted without the current CSRF token (an old tab, or another site)."""
    message = "This form has expired. Go back, reload the page and try again."
    return _page(403, message, ApiError(message, code="forbidden", status=403))


@bp.errorhandler(BrokerUnavailable)
def broker_unavailable(_exc):
    """Say that live updates are down; the app's handler would answer JSON."""
    message = "The live-update service is unavailable. Try again in a moment."
    return _page(503, message, Unavailable(message))


@bp.errorhandler(RateLimitExceeded)
def rate_limited(_exc):
    """Ask to slow down, with the Retry-After the API would send."""
    current = limiter.current_limit
    retry_after = current.reset_at - time.time() if current is not None else 1
    message = "Too many attempts in a short time. Wait a little and try again."
    return _page(429, message, RateLimited(message, retry_after))


@bp.errorhandler(HTTPException)
def http_error(exc):
    """Render a Werkzeug error raised by a page view."""
    status = exc.code or 500
    return _page(status, exc.description or exc.name, ApiError(exc.name, status=status))


@bp.errorhandler(Exception)
def unexpected(exc):
    """Log an unexpected error and show a page without internals."""
    log.error("unhandled exception on %s", request.path, exc_info=exc)
    message = "The server could not finish this request. Try again in a moment."
    return _page(500, message, ApiError("internal server error", code="internal_error",
                                        status=500))

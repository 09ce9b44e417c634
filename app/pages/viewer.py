"""Who is looking at a page: the signed-in user from the access-token cookie, or nobody."""
from functools import wraps

import jwt as pyjwt
from flask import current_app, g, redirect, request, url_for
from flask_jwt_extended import get_current_user, get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import CSRFError, JWTExtendedException

from app.pages import bp

# The states a page tells the browser client about (``<body data-session>``). UNCHECKED: an
# error page answering a form whose CSRF check failed or never ran; the session may be fine,
# so the client neither renews it nor signs it out there.
SIGNED_OUT, ACTIVE, EXPIRED, UNCHECKED = "none", "active", "expired", "unchecked"


def _load_viewer():
    """Return ``(user or None, session state)`` from the cookie; CSRF errors propagate."""
    try:
        found = verify_jwt_in_request(optional=True, locations=["cookies"])
    except CSRFError:
        raise
    except pyjwt.ExpiredSignatureError:
        # The refresh cookie only travels to /api/auth/, so the page cannot renew the
        # session itself: the browser client does (POST /api/auth/refresh) and reloads. (A
        # browser usually drops the cookie at expiry first; then the page is signed out.)
        return None, EXPIRED
    except (pyjwt.PyJWTError, JWTExtendedException):
        return None, SIGNED_OUT  # revoked, malformed, or a user that no longer exists
    if found is None:
        return None, SIGNED_OUT
    return get_current_user(), ACTIVE


def current_viewer():
    """Return the signed-in user of this page request, or None."""
    if "viewer" not in g:
        # Set first, so that the error page of a failed CSRF check renders signed out.
        g.viewer, g.session_state = None, SIGNED_OUT
        g.viewer, g.session_state = _load_viewer()
    return g.viewer


def signed_in(view):
    """Send signed-out visitors to the sign-in page, then back here."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_viewer() is None:
            target = request.full_path if request.method == "GET" else safe_next(None)
            return redirect(url_for("pages.login", next=target))
        return view(*args, **kwargs)
    return wrapper


def safe_next(default="/"):
    """Return the form's or query's ``next`` when it is a path on this site, else *default*."""
    target = request.values.get("next") or ""
    # "//evil.example" is another site to a browser, and so are "/\evil.example" and
    # "/\t/evil.example": browsers read a backslash as a slash and drop tabs and newlines.
    if not target.startswith("/") or target.startswith("//") or "\\" in target \
            or any(char < " " for char in target):
        return default
    return target.rstrip("?")


@bp.context_processor
def session_context():
    """Give every page template the viewer, the CSRF token for forms, and the session facts
    the browser client reads (state, token expiry, server ping interval)."""
    viewer = current_viewer()
    claims = get_jwt() if viewer is not None else {}
    return {"viewer": viewer, "csrf_token": claims.get("csrf", ""),
            "session_state": g.session_state, "session_expires": claims.get("exp", ""),
            "ping_seconds": current_app.config["STREAM_PING_SECONDS"]}

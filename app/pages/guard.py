"""Forms accept posts only from this site.

Every unsafe page request is refused when the browser says it comes from another site
(``Sec-Fetch-Site``, ``Origin``): that stops forged sign-ins ("login CSRF"), sign-ups and
sign-outs, which the session's CSRF token cannot cover (there is no session yet, or the
forger can read the csrf cookie from another port of the same host). A browser too old to
send either header posts the sign-in and register forms with a token bound to a pre-session
cookie instead.
"""
import secrets

from flask import current_app, g, request

from app.errors import Forbidden
from app.pages import bp
from app.security import browser_vouches, cross_site_reason

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
FIELD = "login_csrf"


@bp.before_request
def refuse_cross_site_posts():
    """Answer 403 to a form posted from another site, before the view runs."""
    if request.method in SAFE_METHODS:
        return
    reason = cross_site_reason()
    if reason is not None:
        raise Forbidden(f"This form was refused because {reason}. "
                        "Open the page on this site and send it from there.")


def _cookie_name():
    return current_app.config["LOGIN_CSRF_COOKIE_NAME"]


def login_form_token():
    """Return the token for a sign-in or register form's hidden field, bound to a cookie that
    is set with this answer when the browser has none."""
    if "login_csrf" not in g:
        current = request.cookies.get(_cookie_name(), "")
        g.login_csrf_new = len(current) != 43  # what token_urlsafe(32) gives
        g.login_csrf = secrets.token_urlsafe(32) if g.login_csrf_new else current
    return g.login_csrf


def check_login_form_token():
    """Refuse a sign-in or register post without its form's token, unless the browser said
    where it comes from (then :func:`refuse_cross_site_posts` has judged it)."""
    if browser_vouches():
        return
    cookie = request.cookies.get(_cookie_name(), "")
    field = request.form.get(FIELD, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), field.encode()):
        raise Forbidden("This form has expired or was not sent from this site. "
                        "Go back, reload the page and try again.")


@bp.after_request
def set_login_cookie(response):
    """Set the pre-session cookie that a form rendered in this answer is bound to."""
    if g.get("login_csrf_new"):
        # HttpOnly: the token reaches the form through the HTML, never through script.
        response.set_cookie(_cookie_name(), g.login_csrf, httponly=True, samesite="Lax",
                            secure=current_app.config["JWT_COOKIE_SECURE"], path="/")
    return response


@bp.context_processor
def guard_context():
    """Let templates put the sign-in forms' token in a hidden field."""
    return {"login_form_token": login_form_token}

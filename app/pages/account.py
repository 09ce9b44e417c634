"""Register, sign in and sign out with ordinary forms; the session lives in JWT cookies."""
import jwt as pyjwt
from flask import current_app, redirect, render_template, request, url_for
from flask_jwt_extended import (
    decode_token,
    set_access_cookies,
    set_refresh_cookies,
    unset_jwt_cookies,
)
from flask_jwt_extended.exceptions import CSRFError, JWTExtendedException

from app.auth import tokens
from app.auth.signout import end_session
from app.errors import ApiError
from app.inputs import schemas
from app.inputs.validation import validate
from app.pages import bp
from app.pages.guard import check_login_form_token
from app.pages.viewer import current_viewer, safe_next
from app.ratelimit import limit_auth
from app.services import users



def _signed_in_redirect(user):
    """Redirect to ``next`` with the new session's access and refresh cookies set."""
    issued = tokens.issue_tokens(user)
    response = redirect(safe_next("/"))
    set_access_cookies(response, issued["access_token"])
    set_refresh_cookies(response, issued["refresh_token"])
    return response


def _form_error(template, error):
    """Re-render a form with the error's message and per-field problems, at its status (and
    headers: ``Retry-After`` on a 429)."""
    return render_template(template, error=error.message, fields=error.fields or {},
                           form=request.form), error.status, error.headers


@bp.route("/register", methods=["GET", "POST"])
@limit_auth  # the API's sign-in budget: no side door for guessing
def register():
    """Show the sign-up form; create the account and sign it in."""
    if request.method == "GET":
        return render_template("pages/register.html", fields={}, form={})
    check_login_form_token()
    data = {"username": request.form.get("username", ""),
            "password": request.form.get("password", ""),
            "display_name": request.form.get("display_name") or None}
    try:
        body = validate(schemas.RegisterIn, data)
        user = users.register(body.username, body.password, body.display_name)
    except ApiError as error:
        return _form_error("pages/register.html", error)
    return _signed_in_redirect(user)


@bp.route("/login", methods=["GET", "POST"])
@limit_auth  # the API's sign-in budget: no side door for guessing
def login():
    """Show the sign-in form; check the credentials and start a session."""
    if request.method == "GET":
        return render_template("pages/login.html", fields={}, form={})
    check_login_form_token()
    data = {"username": request.form.get("username", ""),
            "password": request.form.get("password", "")}
    try:
        body = validate(schemas.LoginIn, data)
        user = users.authenticate(body.username, body.password)
    except ApiError as error:
        return _form_error("pages/login.html", error)
    return _signed_in_redirect(user)


@bp.get("/logout")
def confirm_logout():
    """Ask before signing out: a link or an image on another site must not sign anyone out."""
    if current_viewer() is None:
        return redirect(url_for("pages.index"))
    return render_template("pages/logout.html")


@bp.post("/logout")
def logout():
    """Revoke the session (even with an expired access token) and close its streams."""
    token = request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"])
    if token:
        try:
            # The form's csrf_token must match the token's: another site cannot sign us out.
            claims = decode_token(token, csrf_value=request.form.get("csrf_token") or "-",
                                  allow_expired=True)
        except CSRFError:
            raise
        except (pyjwt.PyJWTError, JWTExtendedException):
            claims = {}
        if "sid" in claims:
            end_session(claims["sid"])
    response = redirect(url_for("pages.index"))
    unset_jwt_cookies(response)
    return response

"""JWT set-up: access and refresh tokens tied by a login-session id, errors in our codes.

Both tokens of one sign-in carry the same ``sid`` claim, and refreshing keeps it, so a logout
revokes the whole session: every access token refreshed from it, its refresh tokens, and the
streams they opened. A refresh replaces the refresh token too (rotation): each is good for
one refresh, and a second use of one revokes the session, as only a copy can be replayed.
"""
import secrets
from datetime import timedelta

from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt
from flask_jwt_extended.exceptions import CSRFError, NoAuthorizationError

from app.auth import stores
from app.errors import Forbidden, Unauthorized, error_response
from app.extensions import db, jwt
from app.models import User


def init_app(app):
    """Configure flask-jwt-extended from ``ACCESS_TOKEN_SECONDS``, ``REFRESH_TOKEN_SECONDS``
    and ``COOKIE_SECURE`` (which also picks the cookies' names, see :func:`cookie_names`), and
    map every token failure to the contract's codes."""
    config = app.config
    config.setdefault("JWT_TOKEN_LOCATION", ["headers", "cookies"])
    config.setdefault("JWT_ACCESS_TOKEN_EXPIRES", timedelta(seconds=config["ACCESS_TOKEN_SECONDS"]))
    config.setdefault("JWT_REFRESH_TOKEN_EXPIRES",
                      timedelta(seconds=config["REFRESH_TOKEN_SECONDS"]))
    config.setdefault("JWT_COOKIE_SECURE", config["COOKIE_SECURE"])
    config.setdefault("JWT_COOKIE_SAMESITE", "Lax")
    config.setdefault("JWT_COOKIE_CSRF_PROTECT", True)
    config.setdefault("JWT_CSRF_CHECK_FORM", True)  # no-JavaScript forms post csrf_token
    config.setdefault("JWT_SESSION_COOKIE", False)
    config.setdefault("JWT_REFRESH_COOKIE_PATH", "/api/auth/")
    config.setdefault("JWT_REFRESH_CSRF_COOKIE_PATH", "/")
    for key, name in cookie_names(config["JWT_COOKIE_SECURE"]).items():
        config.setdefault(key, name)
    jwt.init_app(app)
    # Replace the extension's own handlers, registered by init_app, with the envelope.
    app.register_error_handler(CSRFError, lambda e: error_response(
        Forbidden(f"missing or wrong CSRF token: send the "
                  f"{config['JWT_ACCESS_CSRF_COOKIE_NAME']} cookie's value "
                  "in the X-CSRF-TOKEN header")))
    app.register_error_handler(NoAuthorizationError, lambda e: error_response(
        Unauthorized("authentication required", code="token_missing")))


def cookie_names(secure):
    """Return the cookie-name settings (flask-jwt-extended's, and the sign-in forms'
    pre-session cookie) for Secure cookies or not.

    Secure cookies get the browser-enforced prefixes: ``__Host-`` (Secure, Path=/, no Domain,
    so neither a subdomain nor a plain-HTTP page can set or shadow it) where the path is /,
    and ``__Secure-`` for the refresh cookie, which only travels to ``/api/auth/``. Over plain
    HTTP (``make run``) a browser refuses prefixed names, so they stay plain.
    """
    host, narrow = ("__Host-", "__Secure-") if secure else ("", "")
    return {"JWT_ACCESS_COOKIE_NAME": f"{host}access_token_cookie",
            "JWT_ACCESS_CSRF_COOKIE_NAME": f"{host}csrf_access_token",
            "JWT_REFRESH_COOKIE_NAME": f"{narrow}refresh_token_cookie",
            "JWT_REFRESH_CSRF_COOKIE_NAME": f"{host}csrf_refresh_token",
            "LOGIN_CSRF_COOKIE_NAME": f"{host}login_csrf"}


def _unauthorized(code, message):
    return error_response(Unauthorized(message, code=code))


@jwt.expired_token_loader
def _expired(_header, _payload):
    return _unauthorized("token_expired", "the token has expired")


@jwt.invalid_token_loader
def _invalid(reason):
    return _unauthorized("token_invalid", f"invalid token: {reason}")


@jwt.unauthorized_loader
def _missing(_reason):
    return _unauthorized("token_missing", "authentication required")


@jwt.revoked_token_loader
def _revoked(_header, _payload):
    return _unauthorized("token_invalid", "the token was revoked (signed out)")


@jwt.user_lookup_error_loader
def _unknown_user(_header, _payload):
    return _unauthorized("token_invalid", "the token's user no longer exists")


@jwt.needs_fresh_token_loader
def _needs_fresh(_header, _payload):
    return _unauthorized("token_invalid", "a fresh token is required")


@jwt.token_verification_failed_loader
def _verification_failed(_header, _payload):
    return _unauthorized("token_invalid", "invalid token")


@jwt.token_in_blocklist_loader
def _is_revoked(_header, payload):
    sid = payload.get("sid")
    return sid is None or stores.is_revoked(sid)


@jwt.user_lookup_loader
def _load_user(_header, payload):
    return db.session.get(User, payload["sub"])


def issue_tokens(user, sid=None):
    """Return a new access and refresh token for *user*, of one new login session."""
    claims = {"sid": sid or secrets.token_urlsafe(16)}
    return {"access_token": create_access_token(identity=user.id, additional_claims=claims),
            "refresh_token": create_refresh_token(identity=user.id, additional_claims=claims)}


def rotated_tokens():
    """Return a new access and refresh token of the current (refresh) token's login session."""
    claims = get_jwt()
    same_session = {"sid": claims["sid"]}
    return {"access_token": create_access_token(identity=claims["sub"],
                                                additional_claims=same_session),
            "refresh_token": create_refresh_token(identity=claims["sub"],
                                                  additional_claims=same_session)}


def current_session():
    """Return ``(sid, exp)`` of the current request's token."""
    claims = get_jwt()
    return claims["sid"], claims["exp"]


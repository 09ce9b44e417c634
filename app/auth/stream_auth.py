"""Authenticate a request that opens a stream (SSE, long-poll, WebSocket).

Streams accept what other routes accept (the ``Authorization`` header, the access-token
cookie) and, because EventSource and browsers' WebSocket cannot set headers, also
``?token=<access token>`` and ``?ticket=<single-use ticket>``. A GET that only reads needs no
CSRF token. Nothing here touches the database unless a ticket is stored there.
"""
import time
from dataclasses import dataclass

import jwt as pyjwt
from flask import current_app, request
from flask_jwt_extended import decode_token
from flask_jwt_extended.config import config as jwt_config
from flask_jwt_extended.exceptions import JWTExtendedException

from app.auth import stores
from app.errors import Unauthorized


@dataclass(frozen=True, slots=True)
class StreamIdentity:
    """Who opened a stream, which login session it belongs to, and when it must end."""

    user_id: str
    sid: str
    expires_at: float


def _token_from_request():
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <access token>'")
        return token.strip()
    # A credential in the URL is the one the client chose (a token pasted into the console, a
    # ticket): it wins over the cookie that the browser attaches to every request by itself.
    if request.args.get("token"):
        return request.args["token"]
    if request.args.get("ticket"):
        return None
    return request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"]) or None


#: How many verified tokens each app keeps decoded (about 1 KB each), oldest dropped first.
CLAIMS_KEPT = 4096


def verified_claims(token):
    """Return the claims of *token* once its signature verified, as ``decode_token`` does.

    A long-poll client sends the same token with every poll, and its rate-limit key reads it
    too: verifying it each time (Flask-JWT-Extended decodes it twice) was a tenth of a poll's
    CPU. The token's bytes decide its signature and its claims, so a token that verified once
    keeps its claims, per app, until it expires; expiry is checked on every use. Revocation
    is not cached here: callers ask the store each time.

    :raises jwt.PyJWTError: invalid or expired (nothing is kept for a token that fails).
    """
    cache = current_app.extensions.setdefault("verified_claims", {})
    claims = cache.get(token)
    if claims is None:
        claims = decode_token(token)
        if len(cache) >= CLAIMS_KEPT:
            del cache[next(iter(cache))]
        cache[token] = claims
    elif "exp" in claims and claims["exp"] <= time.time() - jwt_config.leeway:
        del cache[token]
        raise pyjwt.ExpiredSignatureError("Signature has expired")
    return claims


def _identity_from_token(token):
    try:
        claims = verified_claims(token)
    except pyjwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired", code="token_expired") from None
    except (pyjwt.PyJWTError, JWTExtendedException) as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    if claims.get("type") != "access" or "sid" not in claims:
        raise Unauthorized("an access token is required")
    if stores.is_revoked(claims["sid"]):
        raise Unauthorized("the token was revoked (signed out)")
    return StreamIdentity(claims["sub"], claims["sid"], float(claims["exp"]))


def user_of_request():
    """Return the user id of the request's access token if its signature is good, else None.

    For rate-limit keys: no revocation check (no Redis, no database), no ticket spent.
    """
    try:
        token = _token_from_request()
        claims = verified_claims(token) if token else {}
    except (Unauthorized, pyjwt.PyJWTError, JWTExtendedException):
        return None
    return claims.get("sub") if claims.get("type") == "access" else None


def authenticate_stream():
    """Return the :class:`StreamIdentity` of the current request.

    :raises Unauthorized: ``token_missing``, ``token_invalid`` or ``token_expired``.
    """
    token = _token_from_request()
    if token:
        return _identity_from_token(token)
    ticket = request.args.get("ticket")
    if ticket:
        redeemed = stores.redeem_ticket(ticket)
        if redeemed is None:
            raise Unauthorized("unknown, used or expired ticket")
        identity = StreamIdentity(*redeemed)
        if stores.is_revoked(identity.sid):
            raise Unauthorized("the ticket's session was signed out")
        return identity
    raise Unauthorized("authentication required: a Bearer token, the session cookie, "
                       "?token= or ?ticket=", code="token_missing")

"""``/api/auth``: register, login, refresh, logout and stream tickets."""
from flask import Blueprint, jsonify, request
from flask_jwt_extended import (
    current_user,
    get_jwt,
    jwt_required,
    set_access_cookies,
    set_refresh_cookies,
    unset_jwt_cookies,
)

from app.api.openapi import documented
from app.auth import stores, tokens
from app.auth.signout import end_session
from app.errors import Unauthorized, error_response
from app.inputs import schemas
from app.inputs.validation import json_body
from app.ratelimit import limit_auth, limit_refresh, limit_tickets
from app.serializers import user_json
from app.services import users

bp = Blueprint("auth", __name__, url_prefix="/api/auth")


def _signed_in(user, status):
    return {"user": user_json(user), **tokens.issue_tokens(user)}, status


@bp.post("/register")
@limit_auth
@documented("Create an account", body=schemas.RegisterIn, response=schemas.AuthOut, status=201,
            auth=False)
def register():
    """Create an account and sign it in."""
    body = json_body(schemas.RegisterIn)
    return _signed_in(users.register(body.username, body.password, body.display_name), 201)


@bp.post("/login")
@limit_auth
@documented("Sign in", body=schemas.LoginIn, response=schemas.AuthOut, auth=False)
def login():
    """Sign in with a username (any case) and password."""
    body = json_body(schemas.LoginIn)
    return _signed_in(users.authenticate(body.username, body.password), 200)


@bp.post("/refresh")
@limit_refresh
@jwt_required(refresh=True)
@documented("Exchange a refresh token for a new access token and a new refresh token",
            response=schemas.RefreshOut)
def refresh():
    """Rotate the session's tokens; a refresh token used twice revokes the whole session.

    By cookie (the pages), the new tokens are also set as the access and refresh cookies.
    """
    claims = get_jwt()
    if not stores.spend_refresh_token(claims["jti"], claims["exp"]):
        # Only a copy can be replayed: whoever holds the other one, end the session for both.
        end_session(claims["sid"])
        response = error_response(Unauthorized(
            "this refresh token was already used, so its session was signed out; sign in again"))
        unset_jwt_cookies(response)
        return response
    issued = tokens.rotated_tokens()
    response = jsonify(issued)
    if "Authorization" not in request.headers:
        set_access_cookies(response, issued["access_token"])
        set_refresh_cookies(response, issued["refresh_token"])
    return response


@bp.post("/logout")
@jwt_required()
@documented("Sign out: revoke the session's tokens and close its streams",
            response=schemas.MessageOut)
def logout():
    """Revoke the login session of the current token and close the streams it opened."""
    end_session(get_jwt()["sid"])
    response = jsonify({"message": "signed out"})
    unset_jwt_cookies(response)
    return response


@bp.post("/stream-ticket")
@limit_tickets
@jwt_required()
@documented("A single-use ticket to open one stream within 30 s", response=schemas.TicketOut)
def stream_ticket():
    """Return a ticket that opens one stream as the current user."""
    sid, exp = tokens.current_session()
    ticket = stores.issue_ticket(current_user.id, sid, exp)
    return {"ticket": ticket, "expires_in": stores.ticket_lifetime()}

"""``/api/auth``: register, login, refresh, logout and stream tickets."""
from flask import jsonify, request
from flask_jwt_extended import (
    current_user,
    get_jwt,
    jwt_required,
    set_access_cookies,
    unset_jwt_cookies,
)

from app.api import schemas
from app.api.openapi import documented
from app.api.validation import json_body
from app.auth import bp, stores, tokens
from app.broker.extension import current_broker
from app.ratelimit import limit_auth
from app.serializers import user_json
from app.services import users


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
@jwt_required(refresh=True)
@documented("Exchange a refresh token for a new access token", response=schemas.AccessTokenOut)
def refresh():
    """Return a new access token; refresh by cookie also renews the access cookie."""
    access_token = tokens.refreshed_access_token()
    response = jsonify({"access_token": access_token})
    if "Authorization" not in request.headers:
        set_access_cookies(response, access_token)
    return response


@bp.post("/logout")
@jwt_required()
@documented("Sign out: revoke the session's tokens and close its streams",
            response=schemas.MessageOut)
def logout():
    """Revoke the login session of the current token and close the streams it opened."""
    sid = get_jwt()["sid"]
    stores.revoke_session(sid, stores.refresh_horizon())
    current_broker().revoke(sid)
    response = jsonify({"message": "signed out"})
    unset_jwt_cookies(response)
    return response


@bp.post("/stream-ticket")
@jwt_required()
@documented("A single-use ticket to open one stream within 30 s", response=schemas.TicketOut)
def stream_ticket():
    """Return a ticket that opens one stream as the current user."""
    sid, exp = tokens.current_session()
    ticket = stores.issue_ticket(current_user.id, sid, exp)
    return {"ticket": ticket, "expires_in": stores.ticket_lifetime()}

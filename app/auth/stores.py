"""Where revoked sessions, stream tickets and used refresh tokens live: Redis when configured,
else the database.

Every worker must see a logout at once, so the blocklist is shared state, never a
per-process set.
"""
import json
import secrets
import time
from datetime import datetime, timezone

import redis
from flask import current_app
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from app.errors import Unavailable
from app.extensions import db
from app.models import RevokedSession, StreamTicket, UsedRefreshToken
from app.redis_client import ExistsBatch, current_redis

TICKET_SECONDS = 30


def _redis():
    return current_redis()


def _prefix():
    return current_app.config.get("REDIS_PREFIX", "rt")


def _at(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc)


def revoke_session(sid, until):
    """Mark the login session *sid* revoked until the epoch time *until*."""
    client = _redis()
    if client is not None:
        ttl = max(1, int(until - time.time()))
        try:
            client.set(f"{_prefix()}:revoked:{sid}", 1, ex=ttl)
        except (redis.RedisError, OSError) as exc:
            raise Unavailable("cannot record the logout now; try again") from exc
        return
    db.session.execute(delete(RevokedSession).where(RevokedSession.expires_at < _at(time.time())))
    db.session.merge(RevokedSession(sid=sid, expires_at=_at(until)))
    try:
        db.session.commit()
    except IntegrityError:  # revoked at the same moment by another request: done either way
        db.session.rollback()


def _revocation_checks(client):
    """Return the app's batch of revocation checks (every stream open and poll asks one)."""
    batch = current_app.extensions.get("revocation_checks")
    if batch is None or batch.client is not client:
        batch = current_app.extensions["revocation_checks"] = ExistsBatch(client)
    return batch


def is_revoked(sid):
    """Return whether the login session *sid* was revoked."""
    client = _redis()
    if client is not None:
        try:
            return _revocation_checks(client).exists(f"{_prefix()}:revoked:{sid}")
        except (redis.RedisError, OSError) as exc:
            raise Unavailable("cannot check the token now; try again") from exc
    return db.session.get(RevokedSession, sid) is not None


def issue_ticket(user_id, sid, token_expires_at):
    """Return a new single-use ticket that opens one stream within 30 seconds."""
    ticket = secrets.token_urlsafe(24)
    client = _redis()
    if client is not None:
        value = json.dumps({"user_id": user_id, "sid": sid, "exp": token_expires_at})
        try:
            client.set(f"{_prefix()}:ticket:{ticket}", value, ex=TICKET_SECONDS)
        except (redis.RedisError, OSError) as exc:
            raise Unavailable("cannot issue a ticket now; try again") from exc
        return ticket
    now = time.time()
    db.session.execute(delete(StreamTicket).where(StreamTicket.expires_at < _at(now)))
    db.session.add(StreamTicket(ticket=ticket, user_id=user_id, sid=sid,
                                token_expires_at=_at(token_expires_at),
                                expires_at=_at(now + TICKET_SECONDS)))
    db.session.commit()
    return ticket


def redeem_ticket(ticket):
    """Consume *ticket*; return ``(user_id, sid, token_expires_at)`` or None when not valid."""
    client = _redis()
    if client is not None:
        try:
            value = client.getdel(f"{_prefix()}:ticket:{ticket}")
        except (redis.RedisError, OSError) as exc:
            raise Unavailable("cannot check the ticket now; try again") from exc
        if value is None:
            return None
        data = json.loads(value)
        return data["user_id"], data["sid"], data["exp"]
    row = db.session.get(StreamTicket, ticket)
    if row is None:
        return None
    # The delete that removes the row is what spends the ticket: of two racing redeems,
    # only one deletes it.
    spent = db.session.execute(delete(StreamTicket).where(StreamTicket.ticket == ticket)).rowcount
    db.session.commit()
    if not spent or row.expires_at < _at(time.time()):
        return None
    return row.user_id, row.sid, row.token_expires_at.timestamp()


def spend_refresh_token(jti, token_expires_at):
    """Mark the refresh token *jti* used; return False when it already was.

    Atomic, so of two refreshes racing with one token exactly one wins: ``SET NX`` in Redis,
    the primary key of a row in the database. The mark lasts as long as the token would.
    """
    client = _redis()
    if client is not None:
        ttl = max(1, int(token_expires_at - time.time()) + 1)
        try:
            return bool(client.set(f"{_prefix()}:refreshed:{jti}", 1, nx=True, ex=ttl))
        except (redis.RedisError, OSError) as exc:
            raise Unavailable("cannot refresh the session now; try again") from exc
    db.session.execute(delete(UsedRefreshToken)
                       .where(UsedRefreshToken.expires_at < _at(time.time())))
    db.session.add(UsedRefreshToken(jti=jti, expires_at=_at(token_expires_at)))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def ticket_lifetime():
    """Return how long a ticket stays valid, in seconds."""
    return TICKET_SECONDS


def refresh_horizon():
    """Return the epoch time until which a session revoked now must stay revoked."""
    return time.time() + current_app.config["REFRESH_TOKEN_SECONDS"] + 60

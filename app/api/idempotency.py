"""``Idempotency-Key`` on every write of the API: a retry gets the first answer, nothing twice.

A client that sends a write and loses the connection cannot tell whether the server did it.
With an ``Idempotency-Key`` header it can simply send the same request again: the first
answer (status, body, ``Content-Type`` and ``Location``) is kept per user for
``IDEMPOTENCY_TTL_SECONDS`` (24 hours) and returned to every retry with the same key, marked
``Idempotent-Replayed: true``; the route does not run again, so no row is written and no event
is published twice.

Why the database and not Redis, even when ``REDIS_URL`` is set: the key's row is inserted
before the route runs, in the session's open transaction, so the service's own
``db.session.commit()`` commits it together with the write. A crash between that commit and
the storing of the answer leaves the row (without an answer) behind, and a retry is refused
instead of doing the write again; a key kept anywhere else could not commit atomically with
the write.

Concurrent requests with one key: exactly one claims the key (on PostgreSQL the other's
INSERT waits on the unique key until the first transaction ends). The others wait up to
``IDEMPOTENCY_WAIT_SECONDS`` for its answer and return it, or get 409 ``conflict`` "request with
this key in progress". A row left without an answer for ``IDEMPOTENCY_LEASE_SECONDS`` belongs to
a request that was cut off after its write committed: its retries get 409 at once.
"""
import hashlib
import re
import time
from datetime import timedelta

import orjson
from flask import current_app, g, request
from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request
from sqlalchemy import delete, select

from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.models import IdempotencyKey
from app.models.base import utcnow
from app.services.upsert import insert

HEADER = "Idempotency-Key"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_KEPT_HEADERS = ("Content-Type", "Location")
# 5xx answers say nothing about what happened, and 429 asks to come back later: a retry
# with the same key runs the route again (any write that did commit keeps its key's row).
_NOT_KEPT = frozenset({429})

# The clock of key expiry; tests replace it to move a day ahead.
clock = utcnow
_last_purge = [float("-inf")]


def init_app(app):
    """Set the defaults of ``IDEMPOTENCY_TTL_SECONDS`` (86400), ``IDEMPOTENCY_WAIT_SECONDS``
    (5), ``IDEMPOTENCY_LEASE_SECONDS`` (60) and ``IDEMPOTENCY_PURGE_SECONDS`` (60: how often a
    process deletes expired keys)."""
    app.config.setdefault("IDEMPOTENCY_TTL_SECONDS", 86400)
    app.config.setdefault("IDEMPOTENCY_WAIT_SECONDS", 5.0)
    app.config.setdefault("IDEMPOTENCY_LEASE_SECONDS", 60)
    app.config.setdefault("IDEMPOTENCY_PURGE_SECONDS", 60)


def claim_key():
    """Before a write route runs: replay the answer of a known key, or claim a new one.

    Returns the stored answer for a retry (so the route does not run), or None after
    inserting this request's key row into the open transaction.
    """
    if request.method not in WRITE_METHODS or HEADER not in request.headers:
        return None
    key = request.headers[HEADER]
    if not _KEY.fullmatch(key):
        raise ValidationFailed(f"{HEADER} must be 1 to 255 printable ASCII characters",
                               fields={HEADER: "1 to 255 printable ASCII characters"})
    verify_jwt_in_request()  # keys are per user: every write route needs one anyway
    user_id, fingerprint = get_jwt_identity(), _fingerprint()
    _purge_now_and_then()
    deadline = time.monotonic() + current_app.config["IDEMPOTENCY_WAIT_SECONDS"]
    while True:
        row = _known(user_id, key)
        if row is None:
            if _insert_pending(user_id, key, fingerprint):
                g.idempotency = (user_id, key, fingerprint)
                return None
            continue  # another request claimed it first: read its row
        if row.fingerprint != fingerprint:
            raise ValidationFailed(f"this {HEADER} was already used for another request",
                                   fields={HEADER: "already used for another request"})
        if row.status is not None:
            return _replay(row)
        _wait_or_refuse(row, deadline)


def keep_answer(response):
    """After a write route with a claimed key: store its answer with the key, and commit."""
    claimed = g.pop("idempotency", None)
    if claimed is None:
        return response
    if response.status_code >= 500 or response.status_code in _NOT_KEPT:
        db.session.rollback()  # forget a claim not committed yet: the retry runs the route
        return response
    user_id, key, fingerprint = claimed
    now = clock()
    headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
    answer = {"status": response.status_code, "headers": orjson.dumps(headers).decode(),
              "body": response.get_data()}
    # Upsert: a route that rolled its session back (a reaction that changed nothing) took
    # the uncommitted claim with it.
    upsert = insert(IdempotencyKey).values(
        user_id=user_id, key=key, fingerprint=fingerprint, created_at=now,
        expires_at=now + _ttl(), **answer)
    db.session.execute(upsert.on_conflict_do_update(
        index_elements=[IdempotencyKey.user_id, IdempotencyKey.key], set_=answer,
        where=(IdempotencyKey.status.is_(None)) & (IdempotencyKey.fingerprint == fingerprint)))
    db.session.commit()
    return response


def purge_expired(now=None):
    """Delete every key whose answer is past its 24 hours; return how many."""
    deleted = db.session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.expires_at <= (now or clock()))).rowcount
    db.session.commit()
    return deleted


def _ttl():
    return timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"])


def _fingerprint():
    """Hash what makes two requests the same: method, route path and body (JSON key order aside)."""
    body = request.get_data(cache=True)
    try:
        body = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        pass  # not JSON: the route answers 400, and the raw bytes identify the request
    path = request.path.rstrip("/").lower()  # ids are accepted in any case
    return hashlib.sha256(f"{request.method} {path}\n".encode() + body).hexdigest()


def _known(user_id, key):
    """Return the live row of *key*, read afresh (expired rows count as absent)."""
    db.session.rollback()  # a new transaction sees what concurrent requests committed
    row = db.session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .execution_options(populate_existing=True))
    return row if row is not None and row.expires_at > clock() else None


def _insert_pending(user_id, key, fingerprint):
    """Insert the key's row, without an answer, into the open transaction; return whether
    this request owns the key. An expired row of the same key is taken over."""
    now = clock()
    values = {"fingerprint": fingerprint, "status": None, "headers": None, "body": None,
              "created_at": now, "expires_at": now + _ttl()}
    upsert = insert(IdempotencyKey).values(user_id=user_id, key=key, **values)
    return bool(db.session.execute(upsert.on_conflict_do_update(
        index_elements=[IdempotencyKey.user_id, IdempotencyKey.key], set_=values,
        where=IdempotencyKey.expires_at <= now)).rowcount)


def _wait_or_refuse(row, deadline):
    """Wait a little for the answer of a request in progress; refuse when it will not come."""
    lease = timedelta(seconds=current_app.config["IDEMPOTENCY_LEASE_SECONDS"])
    if row.created_at + lease < clock():
        raise Conflict("request with this key was cut off after it was carried out; "
                       "its answer is lost: use a new key only to do it again")
    if time.monotonic() >= deadline:
        raise Conflict("request with this key in progress")
    db.session.rollback()
    time.sleep(0.05)  # gevent's sleep under gunicorn: other requests run meanwhile


def _replay(row):
    """Return the stored answer of *row* as a response."""
    response = current_app.response_class(row.body, status=row.status)
    response.headers.update(orjson.loads(row.headers or "{}"))
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _purge_now_and_then():
    """Delete expired keys at most once per ``IDEMPOTENCY_PURGE_SECONDS`` in this process."""
    now = time.monotonic()
    if now - _last_purge[0] >= current_app.config["IDEMPOTENCY_PURGE_SECONDS"]:
        _last_purge[0] = now
        purge_expired()

"""Long-poll: ``GET /poll/feed?cursor=&timeout=`` and ``GET /poll/post/<id>?cursor=&timeout=``.

A waiting request parks on the same per-process subscription as SSE streams (no loop that
polls Redis or the database) and answers as soon as one event after the cursor exists.
"""
import time

from flask import Blueprint, Response, current_app, request

from app.errors import ValidationFailed
from app.events.channels import FEED, POST
from app.ratelimit import limit_longpoll
from app.transports.opening import authorize_stream, open_session, watch_hangup
from app.transports.session import StreamEnded

bp = Blueprint("poll", __name__, url_prefix="/poll")
limit_longpoll(bp)  # per user, feed and post together; 429 with Retry-After in the envelope

MAX_EVENTS = 100
NO_STORE = {"Cache-Control": "no-store"}


def _timeout():
    """Return the requested wait in seconds: default 25, at most 55 (larger values are capped)."""
    config = current_app.config
    raw = request.args.get("timeout")
    if raw is None or raw == "":
        return config["LONGPOLL_DEFAULT_SECONDS"]
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValidationFailed("timeout must be a number of seconds from 0 to 55",
                               fields={"timeout": "must be a number from 0 to 55"})
    return min(value, config["LONGPOLL_MAX_SECONDS"])


def _wait(session, initial, timeout):
    """Return what to answer: the first messages after the cursor, within *timeout*.

    A wait never outlives the token: the session ends it as SSE and WebSocket streams end,
    with ``token_expired``, instead of delivering events for up to 55 s more.
    """
    messages = initial
    deadline = time.monotonic() + timeout
    try:
        while not messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages = session.receive(remaining)
    except StreamEnded as ended:
        last = session.ending(ended.reason)
        if last is not None:
            messages = [last]
    return messages


def _answer(session, messages, start):
    """Return the JSON body: up to 100 events and the cursor to pass next time."""
    returned = messages[:MAX_EVENTS]
    ids = [m.event_id for m in returned if m.event_id]
    if ids:
        cursor = ids[-1]
    elif len(messages) <= MAX_EVENTS:
        cursor = session.cursor
    else:
        cursor = start
    body = b'{"events":[%s],"cursor":"%s"}' % (b",".join(m.data for m in returned), cursor.encode())
    return body


def _poll(kind, key=None):
    timeout = _timeout()
    identity, channel = authorize_stream(kind, key)
    if request.method == "HEAD":
        # What a GET would answer, at once: no wait, no session, no slot.
        # An empty iterator, not b"": the answer's length is not known without the wait.
        return Response(iter(()), mimetype="application/json", headers=NO_STORE)
    cursor = request.args.get("cursor") or None
    session, initial = open_session("poll", identity, channel, cursor, request.environ)
    # A client that gives up on its poll frees the slot now, not at the end of the timeout.
    watcher = watch_hangup(session, request.environ)
    try:
        start = session.cursor
        messages = _wait(session, initial, timeout)
        body = _answer(session, messages, start)
        session.delivered(messages[:MAX_EVENTS])
    finally:
        if watcher is not None:
            watcher.stop()
        session.close()
    return Response(body, mimetype="application/json", headers=NO_STORE)


@bp.get("/feed")
def feed():
    """Answer the signed-in user's feed events after the cursor."""
    return _poll(FEED)


@bp.get("/post/<post_id>")
def post(post_id):
    """Answer one post's events after the cursor."""
    return _poll(POST, post_id)

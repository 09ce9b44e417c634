"""Signing out: the session's tokens stop working, and its open streams close in every process.

The blocklist (:mod:`app.auth.stores`) refuses the session's tokens from now on; a
``session_ended`` event on the broker's ``signouts`` channel reaches every process, where
:class:`StreamsBySession` closes the streams that session opened.
"""
import orjson
from flask import current_app

from app.auth import stores
from app.events.schema import SESSION_ENDED, Event

SIGNOUTS = "signouts"  # the broker channel of sign-outs (not a channel kind a client opens)
REVOKED = "revoked"  # the reason a signed-out session's streams are closed with


def end_session(sid):
    """Revoke every token of the login session *sid* and close the streams they opened.

    :raises BrokerUnavailable: when other processes could not be told (the tokens are
        revoked already).
    """
    stores.revoke_session(sid, stores.refresh_horizon())
    streams = current_app.extensions["streams_by_session"]
    streams.end(sid)  # here at once; the broker tells the other processes
    streams.broker.publish([SIGNOUTS], Event(SESSION_ENDED, {"sid": sid}))


class StreamsBySession:
    """This process's open streams by login session, closed when their session signs out.

    It is a subscriber of the broker's ``signouts`` channel (see :mod:`app.broker.hub`),
    subscribed with the first stream it holds.
    """

    channel = SIGNOUTS

    def __init__(self, broker):
        self.broker = broker
        self._inboxes = {}  # sid -> the inboxes of its streams
        self._subscribed = False

    def add(self, sid, inbox):
        """Close *inbox* (with ``revoked``) when the session *sid* signs out.

        :raises BrokerUnavailable: when sign-outs cannot be subscribed to.
        """
        if not self._subscribed:
            self.broker.subscribe(self)
            self._subscribed = True
        self._inboxes.setdefault(sid, set()).add(inbox)

    def discard(self, sid, inbox):
        """Forget *inbox* (its stream closed)."""
        inboxes = self._inboxes.get(sid)
        if inboxes is not None:
            inboxes.discard(inbox)
            if not inboxes:
                del self._inboxes[sid]

    def end(self, sid):
        """Close every local stream of the session *sid*."""
        for inbox in tuple(self._inboxes.get(sid, ())):
            inbox.close(REVOKED)

    # -- the broker's subscriber interface ----------------------------------------------------

    def put(self, message):
        """Take a ``session_ended`` event from another process."""
        if message.type == SESSION_ENDED:
            self.end(orjson.loads(message.data)["sid"])

    def check(self, head):
        """Nothing to repair: a sign-out missed in a pub/sub gap is refused at the next open."""

    def close(self, reason):
        """The process is ending: subscribe again if it is used after all."""
        self._subscribed = False


def init_app(app):
    """Store this process's :class:`StreamsBySession` in ``app.extensions["streams_by_session"]``
    (after the broker, which it subscribes to)."""
    app.extensions["streams_by_session"] = StreamsBySession(app.extensions["broker"])

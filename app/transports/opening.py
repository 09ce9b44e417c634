"""What every transport does before it streams: authenticate, authorise, open a session."""
import socket

from flask import current_app

from app.auth.stream_auth import authenticate_stream
from app.broker import BrokerUnavailable
from app.broker.extension import current_broker
from app.broker.hub import SLOW
from app.errors import RateLimited, Unavailable
from app.extensions import db
from app.services.channels import authorize_channel
from app.transports.session import StreamRefused, StreamSession


def _closer(environ):
    """Return a callback that cuts a slow client's socket, unblocking a stuck write."""
    def close(reason):
        sock = environ.get("gunicorn.socket")
        if reason == SLOW and sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    return close


def _bound_send_buffer(environ, size):
    """Cap the kernel's send buffer of a stream socket.

    Linux grows it to megabytes for a client that stopped reading, hiding the stall from the
    inbox bounds for a minute or more; a modest cap lets the stall show within seconds.
    """
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:
            pass


def open_session(transport, kind, key, last_event_id, environ, identity=None):
    """Return an open :class:`StreamSession` and the messages to send first.

    *identity* is the request's :class:`StreamIdentity` when the caller already has it (a
    ticket can be redeemed only once); otherwise the request is authenticated here.

    :raises ApiError: 401 without valid credentials, 404 for an unknown post, 429 over the
        per-user stream limit, 503 when the broker is unreachable.
    """
    identity = identity or authenticate_stream()
    channel = authorize_channel(identity.user_id, kind, key)
    # A stream may stay open for hours: it must not pin a database connection.
    db.session.remove()
    session = StreamSession(current_broker(), channel, identity, transport, current_app.config,
                            on_close=_closer(environ))
    _bound_send_buffer(environ, current_app.config["STREAM_SEND_BUFFER_BYTES"])
    try:
        initial = session.open(last_event_id)
    except StreamRefused as refused:
        raise RateLimited(refused.message, refused.retry_after) from None
    except BrokerUnavailable as exc:
        raise Unavailable(f"streams are unavailable: {exc}") from None
    return session, initial

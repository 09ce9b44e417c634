"""What every transport does before it streams: authenticate, authorise, open a session."""
import functools
import socket

from flask import current_app
from gevent import get_hub
from gevent.lock import BoundedSemaphore
from sqlalchemy.exc import SQLAlchemyError

from app.auth.stream_auth import authenticate_stream
from app.broker import BrokerUnavailable
from app.broker.extension import current_broker
from app.errors import RateLimited, Unavailable
from app.events.channels import FEED, channel_kind
from app.extensions import db
from app.services.audience import large_followees
from app.services.channels import authorize_channel
from app.stream_quota import QuotaUnavailable, current_quota
from app.transports.delivery import GONE, SLOW, raw_socket
from app.transports.session import StreamRefused, StreamSession

_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


def _closer(sock):
    """Return a callback that cuts a slow client's socket, unblocking a stuck write.

    It holds the socket, not the request's environ: a parked SSE stream outlives its request.
    """
    def close(reason):
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


def authorize_stream(kind, key, identity=None):
    """Return who opens the stream and its channel: ``(identity, channel)``.

    *identity* is the request's :class:`StreamIdentity` when the caller already has it (a
    ticket can be redeemed only once); otherwise the request is authenticated here.

    :raises ApiError: 401 without valid credentials, 404 for an unknown post.
    """
    identity = identity or authenticate_stream()
    return identity, authorize_channel(identity.user_id, kind, key)


def open_session(transport, identity, channel, last_event_id, environ):
    """Return an open :class:`StreamSession` on *channel* and the messages to send first.

    The caller owns the session from here: every path must end in ``session.close()``.

    :raises ApiError: 429 over the per-user stream limit, 503 when the broker is unreachable.
    """
    # A stream may stay open for hours: it must not pin a database connection.
    db.session.remove()
    session = StreamSession(current_broker(), channel, identity, transport, current_app.config,
                            current_quota(), current_app.extensions["streams_by_session"],
                            on_close=_closer(environ.get("gunicorn.socket")),
                            load_authors=_followees_loader() if channel_kind(channel) == FEED
                            else None)
    _bound_send_buffer(environ, current_app.config["STREAM_SEND_BUFFER_BYTES"])
    try:
        initial = session.open(last_event_id)
    except StreamRefused as refused:
        raise RateLimited(refused.message, refused.retry_after) from None
    except (BrokerUnavailable, QuotaUnavailable) as exc:
        raise Unavailable(f"streams are unavailable: {exc}") from None
    return session, initial


def _followees_loader():
    """Return the app's one ``load_authors(user_id)`` for feed streams (see StreamSession)."""
    app = current_app._get_current_object()
    loader = app.extensions.get("large_followees")
    if loader is None:
        loader = app.extensions["large_followees"] = functools.partial(_large_followees, app)
    return loader


# Lookups at once per process: after a Redis failover every feed stream of a worker asks, and
# they must not take every database connection of its pool (nor wait on it for long).
_LOOKUPS = BoundedSemaphore(4)


def _large_followees(app, user_id):
    """Return the large authors whose events reach *user_id*'s feed by their own channel.

    A stream asks while it opens, or later from its own greenlet (after a resync of a feed
    that forgot them): in an app context of its own, its database session given back at once.

    :raises Unavailable: when the database cannot answer.
    """
    with _LOOKUPS, app.app_context():
        try:
            return large_followees(user_id)
        except SQLAlchemyError as exc:
            raise Unavailable(f"the database cannot say whom this reader follows: {exc}") \
                from None
        finally:
            db.session.remove()


def watch_hangup(session, environ):
    """End *session* as soon as its client closes the connection; return the watcher.

    A stream only writes, so without this a closed client is found out by the write after
    the next ping, or the one after (15–30 s), and keeps its per-user slot meanwhile. One
    read watcher of the event loop per stream (a small C struct; no greenlet, no buffer)
    peeks at the socket when it turns readable: end of file or a reset closes the inbox as
    ``client_gone``. Bytes the client sends are left for the server, and the watch ends
    (a socket with unread bytes stays readable); the pings find that client out as before.

    Returns None when the socket is not a gunicorn gevent one (tests' client, other servers).
    Stop the watcher (``watcher.stop()``) before the socket closes.
    """
    raw = raw_socket(environ.get("gunicorn.socket"))
    if raw is None:
        return None
    watcher = get_hub().loop.io(raw.fileno(), 1)
    watcher.start(_peek, watcher, raw, session.inbox)
    return watcher


def _peek(watcher, raw, inbox):
    """Called by the event loop when a watched stream's socket is readable."""
    try:
        data = raw.recv(1, _PEEK)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        data = b""  # reset by the peer
    watcher.stop()
    if not data:
        inbox.close(GONE)

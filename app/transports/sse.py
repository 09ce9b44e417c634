"""Server-Sent Events: ``GET /stream/feed`` and ``GET /stream/post/<id>``."""
import random

from flask import Blueprint, Response, current_app, request

from app.events.channels import FEED, POST
from app.ratelimit import limit_stream_opens
from app.transports.delivery import SocketWriter, raw_socket
from app.transports.opening import authorize_stream, open_session, watch_hangup
from app.transports.parking import ParkedStreams
from app.transports.session import StreamEnded

bp = Blueprint("sse", __name__, url_prefix="/stream")
limit_stream_opens(bp)  # per client address, checked before anything else (and the upgrade)

HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and similar proxies buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}


def sse_frame(message):
    """Return the SSE block of a message: ``id:`` (when it has one), ``event:``, ``data:``."""
    event_id = b"id: %s\n" % message.event_id.encode() if message.event_id else b""
    return b"%sevent: %s\ndata: %s\n\n" % (event_id, message.type.encode(), message.data)


def sse_chunk(message):
    """Return the SSE block of a message as one HTTP/1.1 chunk (``<hex size>\\r\\n…\\r\\n``)."""
    block = message.framed(sse_frame)
    return b"%X\r\n%s\r\n" % (len(block), block)


def _writer(environ):
    """Return a :class:`SocketWriter` for the stream's socket, or None to write through the server.

    gunicorn frames a body without Content-Length as chunks for HTTP/1.1 and sends it raw for
    HTTP/1.0; once it has sent the headers, writing the same framing ourselves is equivalent.
    Anything else (a HEAD request, another server, the test client) keeps the WSGI path.
    """
    sock = environ.get("gunicorn.socket")
    protocol = environ.get("SERVER_PROTOCOL")
    if raw_socket(sock) is None or environ.get("REQUEST_METHOD") != "GET" \
            or protocol not in ("HTTP/1.1", "HTTP/1.0"):
        return None
    return SocketWriter(sock, sse_chunk if protocol == "HTTP/1.1" else sse_frame)


def _events(session, initial, retry_ms, writer=None, park=None):
    # Jitter spreads the reconnects of many clients after a restart.
    first = b"retry: %d\n\n" % int(retry_ms * random.uniform(1.0, 1.5))
    try:
        batches = session.batches(initial)
        batch = next(batches)
        initial = None
        # The first write goes through the server: it sends the headers.
        yield first + b"".join(message.framed(sse_frame) for message in batch)
        session.delivered(batch)
        if writer is None:
            for batch in batches:
                yield b"".join(message.framed(sse_frame) for message in batch)
                session.delivered(batch)
            return
        if park is not None and park(writer):
            return  # the stream goes on without this request: app/transports/parking.py
        # From here on the stream writes its own frames, and the hub may write for it.
        session.attach(writer)
        framer = writer.framer
        batch = None  # an idle stream keeps nothing it already wrote
        for batch in batches:
            writer.send(b"".join(message.framed(framer) for message in batch))
            session.delivered(batch)
            batch = None
    except StreamEnded:
        pass
    except OSError:
        pass  # the client went away


class StreamBody:
    """The response body of one SSE stream: its chunks, and a ``close()`` that ends it.

    The WSGI server calls ``close()`` on every path, even when the client left before the
    first chunk; a bare generator that never started would ignore that close (its ``finally``
    never runs) and keep the session, its subscription and its per-user slot for good.
    Once the stream is parked (:meth:`park`) the body ends, and the session is no longer its.
    """

    __slots__ = ("chunks", "_session", "_watcher", "_parking", "server_response")

    def __init__(self, session, watcher, parking=None):
        self.chunks = iter(())
        self._session = session
        self._watcher = watcher
        self._parking = parking
        #: The server's response object that writes this body (see :class:`StreamResponse`).
        self.server_response = None

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self.chunks)
        except BaseException:
            self.close()  # the stream ended: give everything back now
            raise

    def park(self, writer):
        """Hand the stream to the event loop with *writer*; return whether it was taken."""
        if self._parking is None or not self._parking.park(
                self._session, writer, self.server_response, self._watcher):
            return False
        self._session = self._watcher = None
        return True

    def close(self):
        """Stop watching the socket, end the chunks and close the session; safe twice."""
        if self._watcher is not None:
            self._watcher.stop()
        try:
            self.chunks.close()
        finally:
            if self._session is not None:
                self._session.close()


class StreamResponse(Response):
    """An SSE response: tells its body which of the server's objects writes it.

    Under gunicorn, ``start_response`` is a method of gunicorn's response; the body needs it
    to take the stream over after its first batch (:mod:`app.transports.parking`). Any other
    server, or a middleware that wraps ``start_response``, leaves the stream unparked.
    """

    def __call__(self, environ, start_response):
        if isinstance(self.response, StreamBody):
            self.response.server_response = getattr(start_response, "__self__", None)
        return super().__call__(environ, start_response)


def _stream(kind, key=None):
    identity, channel = authorize_stream(kind, key)
    if request.method == "HEAD":
        # What a GET would answer, without opening a stream: nothing to send, nothing to hold.
        # An empty iterator, not b"": a stream has no length, so HEAD claims none either.
        return Response(iter(()), mimetype="text/event-stream", headers=HEADERS)
    last_event_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    environ = request.environ
    session, initial = open_session("sse", identity, channel, last_event_id, environ)
    try:
        body = StreamBody(session, watch_hangup(session, environ),
                          current_app.extensions["parked_streams"])
        body.chunks = _events(session, initial, current_app.config["STREAM_RETRY_MS"],
                              _writer(environ), body.park)
    except BaseException:
        session.close()
        raise
    return StreamResponse(body, mimetype="text/event-stream", headers=HEADERS,
                          direct_passthrough=True)


@bp.get("/feed")
def feed():
    """Stream the signed-in user's feed."""
    return _stream(FEED)


@bp.get("/post/<post_id>")
def post(post_id):
    """Stream one post's events."""
    return _stream(POST, post_id)


def init_app(app):
    """Keep the process's parked SSE streams in ``app.extensions["parked_streams"]``."""
    app.extensions["parked_streams"] = ParkedStreams()

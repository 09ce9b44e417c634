"""WebSocket: ``/ws/feed`` and ``/ws/post/<id>`` with flask-sock under gunicorn's gevent worker.

Every refusal (401, 403 for a foreign Origin, 404, 429) is a plain HTTP answer from
``before_request``, since flask-sock upgrades the connection before the view runs. After the
upgrade a connection has one writer: every outgoing frame, including what simple-websocket
itself sends (pongs, close frames), goes through one lock as a whole ``sendall`` —
simple-websocket's own ``send()`` may write part of a large frame (its issue #45).
"""
import logging

import gevent
from flask import Blueprint, current_app, g, request
from simple_websocket import ConnectionClosed
from werkzeug.routing import WebsocketMismatch
from wsproto.events import TextMessage

from app.errors import ApiError, Forbidden, error_response
from app.events.channels import FEED, POST
from app.extensions import sock
from app.ratelimit import limit_stream_opens
from app.services.typing import typing_author
from app.transports import ws_inbound
from app.transports.delivery import EXPIRED, REVOKED, SHUTDOWN, SLOW, SocketWriter
from app.transports.opening import authorize_stream, open_session
from app.transports.session import StreamEnded, control
from app.transports.token_bucket import TokenBucket
from app.transports.ws_frames import deflate_negotiated, text_frame
from app.transports.ws_socket import WholeWrites

bp = Blueprint("ws", __name__, url_prefix="/ws")
limit_stream_opens(bp)  # per client address, checked before anything else (and the upgrade)
log = logging.getLogger(__name__)

# Close codes: 1008 policy (message rate), 1009 too big (simple-websocket), 1012 restart,
# 1013 try again later (too slow to read), 4401 token expired or revoked.
CLOSE_RATE = 1008
CLOSE_RESTART = 1012
CLOSE_SLOW = 1013
CLOSE_TOKEN = 4401
READ_CHECK_SECONDS = 5
CLOSE_REASONS = {EXPIRED: (CLOSE_TOKEN, "token expired"), REVOKED: (CLOSE_TOKEN, "signed out"),
                 SHUTDOWN: (CLOSE_RESTART, "service restart"), SLOW: (CLOSE_SLOW, "too slow to read")}


def _same_origin(origin):
    allowed = current_app.config["ALLOWED_ORIGINS"]
    return origin == f"{request.scheme}://{request.host}" or origin in allowed


def _check_handshake():
    """Refuse, while it is still HTTP, a handshake simple-websocket would fail on (a 500).

    werkzeug routes a request here once it has ``Upgrade: websocket`` and ``Connection:
    upgrade``; these are wsproto's other checks.
    """
    if request.method != "GET":
        raise ApiError("a WebSocket handshake is a GET request")
    version = request.headers.get("Sec-WebSocket-Version")
    if version != "13":
        error = ApiError("WebSocket version 13 is required (Sec-WebSocket-Version: 13)",
                         headers={"Sec-WebSocket-Version": "13"})
        if version:
            error.status, error.code = 426, "upgrade_required"
        raise error
    if not request.headers.get("Sec-WebSocket-Key") or not request.headers.get("Host"):
        raise ApiError("a WebSocket handshake needs the Sec-WebSocket-Key and Host headers")


@bp.before_request
def refuse_before_upgrade():
    """Check Origin, credentials, the post and the stream limit while it is still HTTP."""
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin):
        raise Forbidden(f"WebSocket connections from origin {origin!r} are not allowed")
    if not current_app.config["WS_COMPRESSION"]:
        # simple-websocket accepts permessage-deflate whenever it is offered: hide the offer.
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    g.post_id = (request.view_args or {}).get("post_id")
    identity, channel = authorize_stream(POST if g.post_id else FEED, g.post_id)
    _check_handshake()
    # Typing events name their author: load it now, before the session releases the DB. Only
    # post sockets take typing, so opening (or resuming) a feed socket makes no query.
    g.author = typing_author(identity.user_id) if g.post_id else None
    g.stream = open_session("ws", identity, channel, request.args.get("last_event_id"),
                            request.environ)


@bp.teardown_request
def close_stream(_exc):
    """Close the request's session whatever happened after it opened (a failed handshake)."""
    stream = g.pop("stream", None)
    if stream is not None:
        stream[0].close()


class Connection:
    """One upgraded WebSocket: a reader for client messages, one writer for everything out."""

    def __init__(self, ws, session, initial, author, post_id, config):
        self.ws = ws
        self.session = session
        self.initial = initial
        self.author = author
        self.post_id = post_id
        self.bucket = TokenBucket(config["WS_MESSAGES_PER_SECOND"], config["WS_MESSAGE_BURST"])
        ws.sock = WholeWrites(ws.sock)
        # Without permessage-deflate, frames are identical for every connection: build once.
        self.shared_frames = not deflate_negotiated(ws)

    def serve(self):
        """Run until either side ends the connection."""
        writer = gevent.spawn(self._write)
        try:
            self._read(writer)
        finally:
            writer.kill()
            self.session.close()

    # -- out ------------------------------------------------------------------------------------

    def _frame(self, message):
        if self.shared_frames:
            return message.framed(text_frame)
        return self.ws.ws.send(TextMessage(data=message.data.decode()))

    def _write(self):
        try:
            self._write_until_end()
        finally:
            # The reader waits for client messages with a long timeout: wake it now.
            wake = getattr(self.ws, "event", None)
            if wake is not None:
                wake.set()

    def _write_until_end(self):
        sock = self.ws.sock
        # Shared frames can be written by the hub while this greenlet waits (see delivery.py);
        # every write then goes through the writer, under the lock of WholeWrites.
        writer = SocketWriter(sock.raw, text_frame, sock.lock) if self.shared_frames else None
        code, reason = CLOSE_TOKEN, "token expired"
        try:
            batches, self.initial = self.session.batches(self.initial), None
            for batch in batches:
                data = b"".join(self._frame(m) for m in batch)
                if self.session.writer is not None:
                    writer.send(data)
                else:
                    sock.sendall(data)
                    if writer is not None:
                        self.session.attach(writer)
                self.session.delivered(batch)
                batch = data = None  # an idle connection keeps nothing it already wrote
        except StreamEnded as ended:
            code, reason = CLOSE_REASONS.get(ended.reason, (1011, ended.reason))
        except OSError:
            return
        if writer is not None and writer.pending:
            try:
                writer.send(b"")  # the rest of a frame first, and give back the write lock
            except OSError:
                return
        self._close(code, reason)

    def _close(self, code, reason):
        try:
            self.ws.close(code, reason)
        except (ConnectionClosed, OSError):
            pass

    def reply(self, type_, **fields):
        """Queue a control message for this client (behind what is already queued)."""
        self.session.inbox.put(control(type_, **fields))

    # -- in -------------------------------------------------------------------------------------

    def _read(self, writer):
        while self.ws.connected and not writer.dead:
            try:
                # The timeout only lets this loop see a writer that ended without closing the
                # socket; a short one would wake every idle connection every second.
                data = self.ws.receive(timeout=READ_CHECK_SECONDS)
            except ConnectionClosed:
                return
            if data is None:
                continue
            if not self.bucket.take():
                self._close(CLOSE_RATE, "message rate exceeded")
                return
            ws_inbound.handle(data, self.reply, self.post_id, self.author)


def init_app(app):
    """Configure simple-websocket: ``WS_MAX_MESSAGE_BYTES`` (close 1009 above it), and no
    protocol-level pings (the contract's JSON pings keep connections alive)."""
    app.config.setdefault("SOCK_SERVER_OPTIONS", {
        "max_message_size": app.config["WS_MAX_MESSAGE_BYTES"], "ping_interval": None})
    sock.init_app(app)
    app.register_error_handler(WebsocketMismatch, _mismatch)


def _mismatch(_exc):
    """Answer a plain HTTP request to a WebSocket route (or a handshake to another route)."""
    connection = request.headers.get("Connection", "").lower().split(",")
    if request.headers.get("Upgrade", "").lower() == "websocket" and \
            any(token.strip(" \t") == "upgrade" for token in connection):
        return error_response(ApiError("this route does not accept WebSocket connections"))
    return error_response(ApiError(
        "this is a WebSocket route: connect with a WebSocket client (Upgrade: websocket)",
        code="upgrade_required", status=426, headers={"Upgrade": "websocket"}))


def _serve(ws):
    session, initial = g.stream
    Connection(ws, session, initial, g.author, g.post_id, current_app.config).serve()


@sock.route("/feed", bp=bp)
def feed(ws):
    """Stream the signed-in user's feed over a WebSocket."""
    _serve(ws)


@sock.route("/post/<post_id>", bp=bp)
def post(ws, post_id):
    """Stream one post's events over a WebSocket; accepts ``typing`` from the client."""
    _serve(ws)

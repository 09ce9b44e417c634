"""Server-Sent Events: ``GET /stream/feed`` and ``GET /stream/post/<id>``."""
import random

from flask import Blueprint, Response, current_app, request

from app.events.channels import FEED, POST
from app.transports.opening import open_session
from app.transports.session import StreamEnded

bp = Blueprint("sse", __name__, url_prefix="/stream")

HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and similar proxies buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}


def sse_frame(message):
    """Return the SSE block of a message: ``id:`` (when it has one), ``event:``, ``data:``."""
    event_id = b"id: %s\n" % message.event_id.encode() if message.event_id else b""
    return b"%sevent: %s\ndata: %s\n\n" % (event_id, message.type.encode(), message.data)


def _events(session, initial, retry_ms):
    # Jitter spreads the reconnects of many clients after a restart.
    first = b"retry: %d\n\n" % int(retry_ms * random.uniform(1.0, 1.5))
    try:
        for batch in session.batches(initial):
            yield first + b"".join(message.framed(sse_frame) for message in batch)
            first = b""
            session.delivered(batch)
    except StreamEnded:
        pass
    finally:
        session.close()


def _stream(kind, key=None):
    last_event_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    session, initial = open_session("sse", kind, key, last_event_id, request.environ)
    body = _events(session, initial, current_app.config["STREAM_RETRY_MS"])
    return Response(body, mimetype="text/event-stream", headers=HEADERS, direct_passthrough=True)


@bp.get("/feed")
def feed():
    """Stream the signed-in user's feed."""
    return _stream(FEED)


@bp.get("/post/<post_id>")
def post(post_id):
    """Stream one post's events."""
    return _stream(POST, post_id)

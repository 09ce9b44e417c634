"""What a client may send over a WebSocket: ``ping`` (answered with ``pong``), ``pong`` (to the
server's pings) and, on a post's socket, ``typing``. Anything else gets an ``error`` message."""
import orjson

from app.events import schema
from app.services.typing import announce_typing_as


def handle(data, reply, post_id=None, author=None):
    """Act on one client message *data*; answer with ``reply(type, **fields)``.

    :param post_id: the post of the socket (None on a feed socket: no typing).
    :param author: the short form of the user, for typing events.
    """
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        reply(schema.ERROR, code="bad_json", message="messages must be JSON objects")
        return
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == schema.PING:
        # The client's own timestamp comes back unchanged, so it can time its round trip.
        reply(schema.PONG, timestamp=message.get("timestamp", schema.now_ms()),
              server_time=schema.now_ms())
    elif kind == schema.PONG:
        pass  # an answer to the server's ping: nothing to do
    elif kind == schema.TYPING and post_id and author:
        announce_typing_as(author, post_id)
    else:
        reply(schema.ERROR, code="unknown_type",
              message=f"unknown message type {kind!r}: expected ping"
                      + (" or typing" if post_id else ""))

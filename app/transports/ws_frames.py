"""WebSocket frames we build ourselves, and whether a connection lets us.

Without permessage-deflate a text frame is the same bytes for every connection, so one frame
per message serves them all (cached by :meth:`~app.events.wire.Message.framed`); with it, each
connection's compressor must frame its own messages (wsproto does).
"""
import struct


def text_frame(message):
    """Return an unmasked, uncompressed text frame of *message* (shared by all connections)."""
    payload = message.data
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def deflate_negotiated(ws):
    """Return whether the handshake of *ws* (a simple-websocket Server) agreed on compression.

    wsproto keeps the agreed extensions private; tests/unit/test_library_internals.py fails
    when it moves them, since reading nothing here would silently send every frame unshared.
    """
    # wsproto 1.3 calls it ``connection``; older versions ``_connection``.
    connection = getattr(ws.ws, "connection", None) or getattr(ws.ws, "_connection", None)
    try:
        return bool(connection._proto.extensions)
    except AttributeError:
        return True  # unknown: let wsproto frame every message, which is always right

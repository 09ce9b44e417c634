"""A stream's socket once its headers are out: written by its greenlet, or by the event loop.

The hub writes a waiting stream's messages from the event loop (:class:`~app.broker.hub.Flusher`)
and must never block there: :meth:`SocketWriter.send_nowait` gives the kernel what it takes at
once and keeps the rest *pending*. The stream's greenlet then sends the pending bytes first,
before anything else, with the blocking :meth:`SocketWriter.send`, so the byte stream keeps its
order whoever writes.
"""


class SocketWriter:
    """Direct writes of pre-framed messages to one stream's socket.

    :param sock: the connection's gevent socket.
    :param framer: ``framer(message) -> bytes``, the transport's framing (cached per message).
    :param lock: a lock other writers of the socket hold for each whole write (WebSocket
        control frames), or None.
    """

    __slots__ = ("sock", "raw", "framer", "lock", "pending", "_holding")

    def __init__(self, sock, framer, lock=None):
        self.sock = sock
        # gevent keeps the real non-blocking socket here; sending on it never waits.
        self.raw = sock._sock
        self.framer = framer
        self.lock = lock
        self.pending = b""
        self._holding = False

    def ready(self):
        """Return whether a write may go out now: nothing pending, no other writer busy."""
        return not self.pending and (self.lock is None or not self.lock.locked())

    def send_nowait(self, data):
        """Send what the kernel takes now; return False when some of *data* is left pending."""
        try:
            sent = self.raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = 0  # the greenlet's own send meets the error and ends the stream
        if sent == len(data):
            return True
        self.pending = data[sent:]
        if self.lock is not None:
            # Keep other writers out until the rest of this frame is sent.
            self._holding = self.lock.acquire(blocking=False)
        return False

    def send(self, data):
        """Send the pending bytes, then *data*, waiting as long as the socket needs."""
        if self.pending:
            pending, self.pending = self.pending, b""
            try:
                self.sock.sendall(pending)
            finally:
                if self._holding:
                    self._holding = False
                    self.lock.release()
        if data:
            if self.lock is None:
                self.sock.sendall(data)
            else:
                with self.lock:
                    self.sock.sendall(data)

"""A WebSocket's socket with one writer at a time.

simple-websocket's own ``send()`` may write part of a large frame (its issue #45), and the hub
may write frames from the event loop (:class:`~app.transports.delivery.SocketWriter`): every
write goes out whole, under one lock, so frames never interleave.
"""
from gevent.lock import Semaphore


class WholeWrites:
    """A socket whose every write is one whole ``sendall`` under one lock."""

    def __init__(self, sock):
        self._sock = sock
        self._lock = Semaphore()

    @property
    def raw(self):
        """The wrapped gevent socket."""
        return self._sock

    @property
    def lock(self):
        """The lock every whole write holds."""
        return self._lock

    def send(self, data):
        """Write all of *data*, after any other writer's whole write."""
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    sendall = send

    def __getattr__(self, name):
        return getattr(self._sock, name)

"""How live messages get from the broker's hub to a stream's socket.

Each stream subscribes with an :class:`Inbox`: a bounded queue the hub fills and the stream's
greenlet empties (:meth:`~app.transports.session.StreamSession.receive`). Inboxes are bounded
in events, bytes and age: a client that stops reading is cut, not buffered forever, and never
slows the others down.

While a stream waits, the messages of one dispatch round (everything one read from the broker
brought) may be written to its socket from the event loop instead, without waking its greenlet
(:class:`Flusher`, :class:`SocketWriter`): that saves a greenlet switch, a timer and a trip
through the WSGI server per delivery, and batches what arrived together into one write. The
stream decides, message by message, whether such a direct write is in order
(:meth:`~app.transports.session.StreamSession.write_waiting`); anything else wakes it.
"""
import logging
import ssl
import time

import gevent.ssl
from gevent import get_hub
from gevent.hub import Waiter

from app.broker.hub import SHUTDOWN

log = logging.getLogger(__name__)

# Why a stream ends, when something other than its own loop ends it.
SLOW = "slow_consumer"
REVOKED = "revoked"  # its login session signed out
EXPIRED = "expired"  # its token expired
GONE = "client_gone"  # the client closed its connection
__all__ = ["EXPIRED", "GONE", "REVOKED", "SHUTDOWN", "SLOW", "Flusher", "Inbox", "SocketWriter"]


class Inbox:
    """The bounded queue between the hub and one stream (a hub subscriber)."""

    __slots__ = ("channel", "max_events", "max_bytes", "max_lag_ms", "closed", "on_close",
                 "direct", "checkpoint", "large_checkpoint", "_items", "_bytes", "_waiter",
                 "_woken", "_marked")

    def __init__(self, channel, max_events=512, max_bytes=4 << 20, max_lag=10.0, on_close=None):
        self.channel = channel
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_lag_ms = max_lag * 1000
        self.closed = None  # the reason, once closed
        self.on_close = on_close
        #: ``direct(inbox) -> bool``: write the queued messages now, from the event loop, while
        #: the stream waits; False wakes the stream instead (see :class:`Flusher`).
        self.direct = None
        #: The channel's head from the broker's last checkpoint, until the stream takes it.
        self.checkpoint = None
        #: The same for the large-author channel, when the stream reads it too.
        self.large_checkpoint = None
        self._items = []  # a list: an empty deque costs a 64-slot block per idle stream
        self._bytes = 0
        self._waiter = None  # set while the stream waits in get()
        self._woken = False
        self._marked = False  # already in the flusher's list

    def put(self, message):
        """Queue *message*; close the inbox as a slow consumer when it is over its bounds.

        The bounds are a number of events, a number of bytes, and an age: an event that has
        waited longer than ``max_lag`` seconds means the client stopped reading.
        """
        if self.closed:
            return
        items = self._items
        items.append(message)
        self._bytes += len(message.data)
        if len(items) > self.max_events or self._bytes > self.max_bytes or (
                len(items) > 1 and items[0].ts and time.time() * 1000 - items[0].ts > self.max_lag_ms):
            self.close(SLOW)
            return
        if self._waiter is None:
            return  # the stream is busy: its next get() takes the message
        if self.direct is not None:
            if not self._marked:
                self._marked = True
                FLUSHER.mark(self)
        else:
            self.wake()

    def check(self, head):
        """Keep the channel's *head* for the stream to compare with its position; wake it."""
        if not self.closed:
            self.checkpoint = head
            self.wake()

    def check_large(self, head):
        """Keep the large-author channel's *head* for the stream to compare; wake it."""
        if not self.closed:
            self.large_checkpoint = head
            self.wake()

    def close(self, reason):
        """Close the inbox for *reason* and wake its stream; queued messages are dropped."""
        if self.closed:
            return
        self.closed = reason
        self._items = []
        self._bytes = 0
        self.wake()
        if self.on_close is not None:
            self.on_close(reason)

    def get(self, timeout):
        """Return every queued message, waiting up to *timeout* seconds for the first."""
        if timeout > 0 and not self.has_work():
            # A bare Waiter and timer, not an Event and a Timeout: thousands of streams wait
            # at once, each holding its objects and the saved C stack of its greenlet.
            hub = get_hub()
            waiter = self._waiter = Waiter(hub)
            self._woken = False
            timer = hub.loop.timer(max(timeout, 0.0))
            timer.start(waiter.switch, None)
            try:
                waiter.get()
            finally:
                timer.close()
                self._waiter = None
        return self.take()

    def has_work(self):
        """Return whether the stream has something to handle: messages, a checkpoint, or an end."""
        return bool(self._items or self.closed or self.checkpoint is not None
                    or self.large_checkpoint is not None)

    def park(self, waiter):
        """Let the next message, checkpoint or close call ``waiter.switch(None)`` from the event
        loop, as they would wake a stream waiting in :meth:`get`, with no greenlet waiting.

        Direct writes (:class:`Flusher`) are made for a parked stream as for a waiting one.
        """
        self._woken = False
        self._waiter = waiter

    def unpark(self):
        """Stop calling the parked waiter: the stream handles its inbox itself again."""
        self._waiter = None

    def peek(self):
        """Return the queued messages without taking them."""
        return self._items

    def take(self):
        """Return and remove every queued message, without waiting."""
        items = self._items
        if items:
            self._items = []
            self._bytes = 0
        return items

    def take_checkpoint(self):
        """Return and forget the head of the last checkpoint (None when there was none)."""
        head, self.checkpoint = self.checkpoint, None
        return head

    def take_large_checkpoint(self):
        """Return and forget the large-author channel's last checkpoint head (or None)."""
        head, self.large_checkpoint = self.large_checkpoint, None
        return head

    def wake(self):
        """Wake the stream waiting in :meth:`get` (once, however often it is called)."""
        waiter = self._waiter
        if waiter is not None and not self._woken:
            self._woken = True
            get_hub().loop.run_callback(waiter.switch, None)

    def __len__(self):
        return len(self._items)


class Flusher:
    """Writes the messages of waiting streams from the event loop, once per dispatch round.

    :meth:`Inbox.put` marks a waiting stream that accepts direct writes; the first mark
    schedules one callback, which runs once the dispatching greenlet yields (after it has
    handled every message of its last read), so several messages for one stream go out as one
    write. A stream whose ``direct`` hook declines (a gap to repair, a socket that would block)
    is woken and handles its inbox itself.
    """

    def __init__(self):
        self._marked = []
        self._scheduled = False

    def mark(self, inbox):
        """Flush *inbox* with the others at the end of this dispatch round."""
        self._marked.append(inbox)
        if not self._scheduled:
            self._scheduled = True
            get_hub().loop.run_callback(self.flush)

    def flush(self):
        """Let every marked inbox's stream write now, or wake it."""
        self._scheduled = False
        marked, self._marked = self._marked, []
        for inbox in marked:
            inbox._marked = False
            if inbox.closed or not inbox._items:
                continue
            direct = inbox.direct
            try:
                done = inbox._waiter is not None and direct is not None and direct(inbox)
            except Exception:  # noqa: BLE001 - a bug here must not stop the other streams
                log.exception("writing to a waiting stream of %s failed; waking it", inbox.channel)
                done = False
            if not done:
                inbox.wake()


FLUSHER = Flusher()


class SocketWriter:
    """Writes pre-framed messages to one stream's socket, from its greenlet or the event loop.

    The event loop must never block: :meth:`send_nowait` gives the kernel what it takes at
    once and keeps the rest *pending*. The stream's greenlet then sends the pending bytes
    first, before anything else, with the blocking :meth:`send`, so the byte stream keeps its
    order whoever writes.

    :param sock: the connection's gevent socket.
    :param framer: ``framer(message) -> bytes``, the transport's framing (cached per message).
    :param lock: a lock other writers of the socket hold for each whole write (WebSocket
        control frames), or None.
    """

    __slots__ = ("sock", "raw", "framer", "lock", "pending", "_holding")

    def __init__(self, sock, framer, lock=None):
        self.sock = sock
        # A TLS socket has no raw socket to write to: the event loop then leaves every write
        # pending for the stream's greenlet, which writes through TLS.
        self.raw = raw_socket(sock) or _NO_DIRECT_WRITES
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


class _NoDirectWrites:
    """What a :class:`SocketWriter` writes to from the event loop when it cannot: nothing."""

    @staticmethod
    def send(data):
        raise BlockingIOError


_NO_DIRECT_WRITES = _NoDirectWrites()
_TLS = (ssl.SSLSocket, gevent.ssl.SSLSocket)


def raw_socket(sock):
    """Return the non-blocking OS-level socket inside a gevent socket, or None.

    gevent keeps it in the private ``_sock``: sending on it never waits, which is what the
    event loop needs (tests/unit/test_library_internals.py fails when gevent moves it).
    None for a TLS socket too (gunicorn run with ``--certfile``): bytes written under its TLS
    layer would break the stream.
    """
    if isinstance(sock, _TLS):
        return None
    return getattr(sock, "_sock", None)

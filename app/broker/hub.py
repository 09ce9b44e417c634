"""The per-process registry of local subscribers, and their bounded inboxes.

A broker hands each incoming message to :meth:`Hub.dispatch`; the hub puts the same
:class:`~app.events.wire.Message` object into the inbox of every local stream of that channel.
Inboxes are bounded in events and bytes: a client that stops reading is cut, not buffered
forever, and never slows the others down.
"""
import time
from collections import deque

from gevent.event import Event

# Reasons an inbox is closed by something other than its own stream.
SLOW = "slow_consumer"
REVOKED = "revoked"
SHUTDOWN = "shutdown"

# A marker a broker puts in every inbox of a channel after it may have missed live messages
# (a pub/sub reconnect): it carries the channel's head so each stream can check for a gap.
CHECK = "__check"


class Inbox:
    """The bounded queue between the hub and one stream."""

    __slots__ = ("channel", "sid", "max_events", "max_bytes", "max_lag_ms", "closed", "on_close",
                 "_items", "_bytes", "_wake")

    def __init__(self, channel, sid=None, max_events=512, max_bytes=4 << 20, max_lag=10.0,
                 on_close=None):
        self.channel = channel
        self.sid = sid
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_lag_ms = max_lag * 1000
        self.closed = None  # the reason, once closed
        self.on_close = on_close
        self._items = deque()
        self._bytes = 0
        self._wake = Event()

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
        self._wake.set()

    def close(self, reason):
        """Close the inbox for *reason* and wake its stream; queued messages are dropped."""
        if self.closed:
            return
        self.closed = reason
        self._items.clear()
        self._bytes = 0
        self._wake.set()
        if self.on_close is not None:
            self.on_close(reason)

    def get(self, timeout):
        """Return every queued message, waiting up to *timeout* seconds for the first."""
        if not self._items and not self.closed:
            self._wake.wait(timeout)
        self._wake.clear()
        items = list(self._items)
        self._items.clear()
        self._bytes = 0
        return items

    def __len__(self):
        return len(self._items)


class Hub:
    """Local subscribers by channel and by login session, for one process."""

    def __init__(self):
        self.channels = {}
        self._sessions = {}

    def add(self, inbox):
        """Register *inbox*; return True when it is the channel's first local subscriber."""
        subscribers = self.channels.get(inbox.channel)
        first = subscribers is None
        if first:
            subscribers = self.channels[inbox.channel] = set()
        subscribers.add(inbox)
        if inbox.sid:
            self._sessions.setdefault(inbox.sid, set()).add(inbox)
        return first

    def remove(self, inbox):
        """Unregister *inbox*; return True when the channel has no local subscriber left."""
        subscribers = self.channels.get(inbox.channel)
        if subscribers is None:
            return False
        subscribers.discard(inbox)
        if inbox.sid:
            sessions = self._sessions.get(inbox.sid)
            if sessions is not None:
                sessions.discard(inbox)
                if not sessions:
                    del self._sessions[inbox.sid]
        if subscribers:
            return False
        del self.channels[inbox.channel]
        return True

    def dispatch(self, channel, message):
        """Put *message* into every local inbox of *channel*; return how many got it."""
        subscribers = self.channels.get(channel)
        if not subscribers:
            return 0
        # A copy: an inbox closed as slow runs callbacks that may unsubscribe it.
        for inbox in tuple(subscribers):
            inbox.put(message)
        return len(subscribers)

    def revoke(self, sid):
        """Close every local stream opened by the login session *sid*."""
        for inbox in tuple(self._sessions.get(sid, ())):
            inbox.close(REVOKED)

    def close_all(self, reason=SHUTDOWN):
        """Close every local inbox (the worker is shutting down)."""
        for subscribers in tuple(self.channels.values()):
            for inbox in tuple(subscribers):
                inbox.close(reason)

    def count(self):
        """Return the number of local inboxes."""
        return sum(len(subscribers) for subscribers in self.channels.values())

"""The per-process registry of local subscribers, and their bounded inboxes.

A broker hands each incoming message to :meth:`Hub.dispatch`; the hub puts the same
:class:`~app.events.wire.Message` object into the inbox of every local stream of that channel.
Inboxes are bounded in events and bytes: a client that stops reading is cut, not buffered
forever, and never slows the others down.

A stream that waits for messages may let the hub write for it (:attr:`Inbox.direct`): the
messages of one dispatch round (everything one read from the broker brought) are then written
to its socket from the event loop, without waking the stream's greenlet. That saves a greenlet
switch, a timer and a trip through the WSGI server per delivery, and batches what arrived
together into one write.
"""
import logging
import time

from gevent import get_hub
from gevent.hub import Waiter

log = logging.getLogger(__name__)

# Reasons an inbox is closed by something other than its own stream.
SLOW = "slow_consumer"
REVOKED = "revoked"
SHUTDOWN = "shutdown"
GONE = "client_gone"  # the client closed its connection

# A marker a broker puts in every inbox of a channel after it may have missed live messages
# (a pub/sub reconnect): it carries the channel's head so each stream can check for a gap.
CHECK = "__check"


class Inbox:
    """The bounded queue between the hub and one stream."""

    __slots__ = ("channel", "sid", "max_events", "max_bytes", "max_lag_ms", "closed", "on_close",
                 "direct", "_items", "_bytes", "_waiter", "_woken", "_marked")

    def __init__(self, channel, sid=None, max_events=512, max_bytes=4 << 20, max_lag=10.0,
                 on_close=None):
        self.channel = channel
        self.sid = sid
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_lag_ms = max_lag * 1000
        self.closed = None  # the reason, once closed
        self.on_close = on_close
        #: ``direct(inbox) -> bool``: write the queued messages now, from the event loop, while
        #: the stream waits; False wakes the stream instead (see :class:`Flusher`).
        self.direct = None
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
        if not self._items and not self.closed:
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

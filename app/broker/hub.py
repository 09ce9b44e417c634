"""The per-process registry of local subscribers, by channel.

A broker hands each incoming message to :meth:`Hub.dispatch`; the hub passes the same
:class:`~app.events.wire.Message` object to every local subscriber of that channel. After the
broker may have missed live messages (a pub/sub reconnect, a failover), :meth:`Hub.checkpoint`
tells each subscriber the channel's head instead, so that it can look for a gap.

A subscriber is any object with:

- ``channel``: the channel it listens to;
- ``put(message)``: take one live message (must not block: it runs in the broker's listener);
- ``check(head)``: the channel's head is the :class:`~app.events.wire.Position` *head*;
- ``close(reason)``: stop, for *reason* (``shutdown`` when the process ends).

Streams subscribe with their :class:`~app.transports.delivery.Inbox`.
"""

SHUTDOWN = "shutdown"  # the reason every subscriber is closed with when the process ends


class Hub:
    """Local subscribers by channel, for one process."""

    def __init__(self):
        self.channels = {}

    def add(self, subscriber):
        """Register *subscriber*; return True when it is the channel's first local one."""
        subscribers = self.channels.get(subscriber.channel)
        first = subscribers is None
        if first:
            subscribers = self.channels[subscriber.channel] = set()
        subscribers.add(subscriber)
        return first

    def remove(self, subscriber):
        """Unregister *subscriber*; return True when the channel has no local one left."""
        subscribers = self.channels.get(subscriber.channel)
        if subscribers is None:
            return False
        subscribers.discard(subscriber)
        if subscribers:
            return False
        del self.channels[subscriber.channel]
        return True

    def dispatch(self, channel, message):
        """Pass *message* to every local subscriber of *channel*; return how many got it."""
        subscribers = self.channels.get(channel)
        if not subscribers:
            return 0
        # A copy: a subscriber closed as slow runs callbacks that may unsubscribe it.
        for subscriber in tuple(subscribers):
            subscriber.put(message)
        return len(subscribers)

    def checkpoint(self, channel, head):
        """Tell every local subscriber of *channel* that the channel's head is *head*."""
        for subscriber in tuple(self.channels.get(channel, ())):
            subscriber.check(head)

    def close_all(self, reason=SHUTDOWN):
        """Close every local subscriber (the worker is shutting down)."""
        for subscribers in tuple(self.channels.values()):
            for subscriber in tuple(subscribers):
                subscriber.close(reason)

    def count(self):
        """Return the number of local subscribers."""
        return sum(len(subscribers) for subscribers in self.channels.values())

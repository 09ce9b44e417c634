"""The broker interface every implementation keeps, and what they share."""
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

from gevent.event import AsyncResult

from app.broker.authors import AuthorRouter
from app.broker.errors import BrokerUnavailable
from app.broker.hub import Hub
from app.events.wire import pack

log = logging.getLogger(__name__)
__all__ = ["Broker", "BrokerUnavailable", "Replay"]


@dataclass(frozen=True, slots=True)
class Replay:
    """What a channel holds after a position.

    :param head: the channel's newest :class:`~app.events.wire.Position` (seq 0: none yet).
    :param messages: the events after the asked position, oldest first, or None when that
        position is no longer held (another epoch, trimmed, older than the time window).
    :param marks: the names publishes set on the channel (:meth:`Broker.publish`'s *mark*),
        as of *head*, or None when the channel does not know them (new, or reset).
    :param version: when *marks* is None, how many publishes with a mark the channel has had:
        what :meth:`Broker.remember` checks.
    """

    head: object
    messages: list | None
    marks: frozenset | None = None
    version: int = 0


def _reaches(head, position):
    """Return whether a channel whose head is *head* holds *position*: epochs are random, so
    a head of another epoch says nothing of which came first."""
    return head.epoch == position.epoch and head.seq >= position.seq


class Broker(ABC):
    """Publishes events to channels, keeps their history, and feeds local subscribers.

    Subclasses implement :meth:`publish`, :meth:`read`, :meth:`ping` and the two
    subscription hooks :meth:`_listen` and :meth:`_unlisten`; everything else is shared.
    """

    #: Whether channels' history outlives this process (the outbox's relay asks).
    durable = True

    def __init__(self, history_max_events=1000, history_max_seconds=86400):
        self.history_max_events = history_max_events
        self.history_max_seconds = history_max_seconds
        #: How long a once-id is remembered (publish's *once*): the history window, at most
        #: an hour — far longer than an outbox lease, without a day of ids in memory.
        self.once_ms = min(history_max_seconds, 3600) * 1000
        self.hub = Hub()
        #: Routes the large-author channel's events to this process's feed streams.
        self.large = AuthorRouter(self)
        self._reads = {}  # channel -> {after: AsyncResult}: the shared reads in flight
        self.stats = {"published": 0, "publish_failed": 0, "reconnects": 0}

    # -- publishing and history -------------------------------------------------------------

    @abstractmethod
    def publish(self, channels, event, mark=None, once=None):
        """Publish *event* to every channel in *channels*; return the ids it got, in order.

        *mark*, ``"+name"`` or ``"-name"``, also sets or clears that name in each channel's
        marks, in the same step as the event: a feed keeps there which large authors its
        reader follows, so that a stream's open reads them with the feed's head.

        *once*, an id unique to the event, makes the publish happen at most once within
        :attr:`once_ms` (one channel only): the outbox's relay repeats a publish that a killed
        worker may or may not have made. A repeat gets None for its id.

        A replayable event skips a cold channel, one that no stream has read (opened,
        resumed, polled) within ``history_max_seconds`` + 7 days and none listens to: no
        client can resume there, since its next read starts a new epoch. Its id is None.
        The work of a publish thus follows the channels in use, not every follower ever.

        :raises BrokerUnavailable: when the event could not be published.
        """

    @abstractmethod
    def read(self, channel, after=None):
        """Return the :class:`Replay` of *channel* after the position *after* (None: head only)."""

    @abstractmethod
    def read_authors(self, channel, after):
        """Return the :class:`Replay` of *channel*'s events by the authors in *after*, each
        after its own position (``{author: Position}``, one epoch), in the channel's order.

        The channel keeps the last ``history_max_events`` events of each author (within
        ``history_max_seconds``) beside its own history, so a reader of a quiet author keeps
        its place however busy the channel's other authors: the large-author channel's
        resume. *messages* is None when one author's events after its position are not all
        held, or when they are more than ``history_max_events`` in all (no channel's own
        history replays more at once).
        """

    @abstractmethod
    def remember(self, channel, version, names):
        """Make *names* the known marks of *channel*, unless a publish with a mark came since
        a read returned *version* (its change may be missing from *names*, looked up before)."""

    @abstractmethod
    def restart(self, channel):
        """Start *channel* over: a new epoch, so its streams and resuming clients resync, and
        its marks unknown. Done when the broker is back, if it is away now."""

    def read_shared(self, channel, after=None, covering=None):
        """Like :meth:`read`, but concurrent identical reads share one round trip.

        After a pub/sub gap every local stream of a channel asks for the same range at once.
        A read in flight is joined only when it can hold what the caller needs: it began after
        the channel's last live message or checkpoint reached this process (a stream subscribed
        since then was not handed that message), and its head reaches *covering*, a position
        the caller knows the channel has, when given (a checkpoint's head read on another
        connection). Callers a read could not serve share the next one.
        """
        while True:
            pending = self._pending(channel, after)
            if pending is None:
                break
            replay = pending.get()
            if covering is None or _reaches(replay.head, covering):
                return replay
            if self._pending(channel, after) is pending:
                break  # still the newest: this caller starts the next one
        reads = self._reads.setdefault(channel, {})
        pending = reads[after] = AsyncResult()
        try:
            result = self.read(channel, after)
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            pending.set(result)
            return result
        finally:
            reads = self._reads.get(channel)
            if reads is not None and reads.get(after) is pending:
                del reads[after]
                if not reads:
                    del self._reads[channel]

    def _pending(self, channel, after):
        reads = self._reads.get(channel)
        return None if reads is None else reads.get(after)

    def _arrived(self, channel):
        """A live message or checkpoint of *channel* reached this process: reads of it in
        flight began too early for a stream that asks from now on (:meth:`read_shared`)."""
        if self._reads:
            self._reads.pop(channel, None)

    # -- local subscriptions ------------------------------------------------------------------

    def subscribe(self, subscriber):
        """Deliver the live messages of ``subscriber.channel`` to *subscriber* from now on.

        Returns once the subscription is active, so that a read that follows cannot miss an
        event published in between. See :mod:`app.broker.hub` for what a subscriber is.

        :raises BrokerUnavailable: when the subscription could not be made.
        """
        if self.hub.add(subscriber):
            try:
                self._listen(subscriber.channel)
            except BaseException:
                self.hub.remove(subscriber)
                raise

    def confirm(self, subscriber):
        """Wait until the subscription of an already subscribed *subscriber* is active.

        Unlike :meth:`subscribe`, a failure leaves the subscriber registered.

        :raises BrokerUnavailable: when the subscription is not confirmed in time.
        """

    def unsubscribe(self, subscriber):
        """Stop delivering to *subscriber*; the channel is dropped with its last local one."""
        if self.hub.remove(subscriber):
            self._unlisten(subscriber.channel)

    @abstractmethod
    def _listen(self, channel):
        """Start receiving *channel*'s live messages in this process."""

    @abstractmethod
    def _unlisten(self, channel):
        """Stop receiving *channel*'s live messages in this process."""

    # -- operations ---------------------------------------------------------------------------

    @abstractmethod
    def ping(self):
        """Return None when the broker works; raise :class:`BrokerUnavailable` otherwise."""

    def close(self):
        """Close every local stream and release connections."""
        self.hub.close_all()

    @staticmethod
    def wire(event_type, event_id, ts, head, tail):
        """Return the wire bytes of one channel's copy of an event."""
        data = head + event_id.encode() + tail if event_id else head
        return pack(event_type, event_id, ts, data)

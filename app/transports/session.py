"""A client's subscription to one channel: resume, gap repair, pings, expiry and limits.

This is the only place with stream logic, and every transport uses it. Opening a session
subscribes first and reads history second, so no event falls between the two; every live
message is then checked against the session's position (epoch and sequence number) by one
rule, :func:`in_sequence`: the next event goes out, a duplicate of what replay sent is dropped,
a jump is filled from history, and what history no longer holds becomes ``resync_required``.
How a stream ends (token expired, signed out) is decided once too, by :meth:`StreamSession.ending`.

A feed stream whose reader follows large authors also reads the large-author channel
(:mod:`app.broker.authors`): its place is then a :class:`~app.events.wire.Cursor` of two
positions, and every event it sends carries that compound id. Its own feed channel tells it
when its reader follows or unfollows a large author (``_follows`` entries, applied, never
sent), on every worker that holds one of its streams.
"""
import logging
import sys
import time
import uuid

import orjson

from app import metrics
from app.errors import Unavailable
from app.events import schema
from app.events.channels import FEED, LARGE, channel_kind
from app.events.wire import Cursor, Message, Position
from app.transports.delivery import EXPIRED, GONE, REVOKED, SHUTDOWN, SLOW, Inbox

log = logging.getLogger(__name__)
#: Why a stream ended, for the log, when its inbox was closed for it.
_ENDED_BY = {SLOW: "slow consumer", REVOKED: "revoked", SHUTDOWN: "shutdown",
             GONE: "client closed"}


class StreamRefused(Exception):
    """The user has as many streams open as allowed; retry after ``retry_after`` seconds."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


class StreamEnded(Exception):
    """The stream must end; ``reason`` is ``slow_consumer``, ``revoked``, ``expired`` or ``shutdown``."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason
        #: The message that tells the client why, to write before it ends (or None).
        self.last = None


def control(type_, **fields):
    """Return a control :class:`Message` (no id, never stored)."""
    return Message(type_, schema.control(type_, **fields))


def in_sequence(position, messages):
    """Return the position after *messages* when they follow *position* in order, else None.

    In order means: each event is the next of the channel (same epoch, sequence number one
    more), the first one right after *position*. Messages without an id (typing) have no
    place and never break the order. The one rule of every transport and both write paths.
    """
    epoch, seq, last = position.epoch, position.seq, position
    for message in messages:
        if message.event_id is None:
            continue
        if message.seq != seq + 1 or message.epoch != epoch:
            return None
        seq += 1
        last = message.position
    return last


def _follows_in(messages):
    """Return ``[(author, since)]`` of the follows that ``_follows`` entries among *messages*
    announce, in order."""
    follows = []
    for message in messages:
        if message.type == schema.FOLLOWS_CHANGED and b'"following":true' in message.data:
            entry = orjson.loads(message.data)
            follows.append((entry["author"], Position.parse(entry["since"])))
    return follows


class StreamSession:
    """One open stream of one user on one channel.

    :param broker: the process's :class:`~app.broker.Broker`.
    :param channel: ``feed:<user id>`` or ``post:<post id>``.
    :param identity: who opened it: ``user_id``, ``sid`` (login session), ``expires_at`` (s).
    :param transport: ``sse``, ``ws`` or ``poll`` (for limits' messages and metrics).
    :param settings: the app config (ping interval, queue bounds, per-user limit).
    :param quota: the stream count (:mod:`app.stream_quota`).
    :param signouts: this process's :class:`~app.auth.signout.StreamsBySession`.
    :param load_authors: on a feed, ``load_authors(user_id)`` returns the large authors the
        reader follows (their events come on the large-author channel). The feed's own marks
        say it on every read (:class:`~app.broker.Replay`), kept by the ``_follows`` entries'
        publishes; this is called at the open only when the feed does not know them (its
        metadata is new or was reset), and its answer is stored for the next open: a resume
        or a resync runs no SQL. One function for every session: it costs a stream nothing.
    """

    # Thousands of sessions wait at once in a worker: no per-instance __dict__.
    __slots__ = ("broker", "quota", "signouts", "channel", "kind", "identity", "transport",
                 "ping_seconds", "limit", "stream_id", "position", "large", "authors",
                 "_load_authors", "inbox", "writer", "_slot", "_subscribed", "_open_gauge",
                 "opened_at", "next_ping")

    def __init__(self, broker, channel, identity, transport, settings, quota, signouts,
                 on_close=None, load_authors=None):
        self.broker = broker
        self.quota = quota
        self.signouts = signouts
        self.channel = channel
        self.kind = channel_kind(channel)
        self.identity = identity
        self.transport = transport
        self.ping_seconds = settings["STREAM_PING_SECONDS"]
        self.limit = settings["STREAMS_PER_USER"]
        self.stream_id = uuid.uuid4().hex
        self.position = None
        #: The place in the large-author channel, once the stream reads it (else None).
        self.large = None
        #: The large authors followed; the router's own set once joined.
        self.authors = ()
        self._load_authors = load_authors if self.kind == FEED else None
        self.inbox = Inbox(channel, on_close=on_close,
                           max_events=settings["STREAM_QUEUE_MAX_EVENTS"],
                           max_bytes=settings["STREAM_QUEUE_MAX_BYTES"],
                           max_lag=settings["STREAM_MAX_LAG_SECONDS"])
        self._slot = False
        self._subscribed = False
        self._open_gauge = metrics.STREAMS_OPEN.labels(transport, self.kind)
        self.writer = None
        self.opened_at = None
        self.next_ping = None  # monotonic time of the next ping, once the stream started

    # -- opening and closing ------------------------------------------------------------------

    def open(self, last_event_id=None):
        """Take a slot, subscribe, and return what history holds after *last_event_id*.

        Without *last_event_id* the session starts at the channel's head. An id that is no
        longer held (or malformed) returns ``[resync_required]`` and starts at the head.

        :raises StreamRefused: over the per-user stream limit.
        :raises BrokerUnavailable: when the broker cannot be reached.
        :raises QuotaUnavailable: when the stream count cannot be reached.
        """
        if not self.quota.acquire(self.identity.user_id, self.stream_id, self.limit):
            raise StreamRefused(f"too many open streams (at most {self.limit} per user)",
                                retry_after=self.ping_seconds)
        self._slot = True
        try:
            self.broker.subscribe(self.inbox)
            self._subscribed = True
            self.signouts.add(self.identity.sid, self.inbox)
            self._open_gauge.inc()
            initial = self._resume(last_event_id)
        except BaseException:
            self.close()
            raise
        self.opened_at = time.monotonic()
        # Never the token: who, which channel, over what.
        log.info("stream open: user=%s transport=%s channel=%s stream=%s",
                 self.identity.user_id, self.transport, self.channel, self.stream_id)
        return initial

    def _resume(self, last_event_id):
        cursor = Cursor.parse(last_event_id) if last_event_id else None
        after = cursor.own if cursor else None
        replay = self.broker.read_shared(self.channel, after)
        if after is None or replay.messages is None:
            self.position = replay.head
            self._start_large(replay)
            return [control(schema.RESYNC_REQUIRED)] if last_event_id else []
        self.position = after
        messages = self._accept(replay.messages)
        since = cursor.large if self.kind == FEED else None
        follows = _follows_in(messages)
        if len({place.epoch for _, place in follows}) > 1:
            return self._restart()  # the channel restarted between follows: no one place
        if since is None and follows:
            # A plain id: its reader followed no large author then, and each one followed
            # since has its entry among the missed events, saying where to read from.
            since = min((place for _, place in follows), key=lambda place: place.seq)
        self._start_large(replay, since)
        # The marks already hold the authors these entries follow; their events from each
        # entry's place on are still to send (some may be behind the resume point).
        out, catch_ups = self._visible(messages)
        if self.large is not None and since is not None:
            out.extend(self._fill_large(follows + catch_ups))
        if any(m.type == schema.RESYNC_REQUIRED for m in out):
            return self._restart()
        self._catch_up_large()
        return out

    def _start_large(self, replay, since=None):
        """Start reading the large-author channel, from *since* (None: its head), if the
        reader follows a large author; join the router before reading it.

        Whom they follow is the feed's marks as of the *replay*'s head (or, when the feed
        does not know, the database, stored for the next open). The ``_follows`` entries
        replayed after the resume point are already in the marks.
        """
        authors = replay.marks
        if authors is None and self._load_authors is not None:
            authors = self._load_authors(self.identity.user_id)
            self.broker.remember(self.channel, replay.version, authors)
        if not authors:
            return
        self.authors = self.broker.large.join(self.inbox, authors)
        # Not a shared read: one begun before this stream joined may miss an event the router
        # handed to the streams it had then.
        self.large = since if since is not None else self.broker.read(LARGE).head

    def _restart(self):
        """Start over at both heads: what ``resync_required`` tells the client to do.

        Follow entries between the head read at the open and this one are skipped with the
        rest: whom the reader follows is taken again from this head's marks.
        """
        replay = self.broker.read_shared(self.channel)
        self.position = replay.head
        self._reload_authors(replay)
        if self.large is not None:
            self.large = self.broker.read(LARGE).head
        return [control(schema.RESYNC_REQUIRED)]

    @property
    def cursor(self):
        """Return the id that resumes this stream where it is now."""
        return Cursor(self.position, self.large).event_id

    def close(self):
        """Unsubscribe and give back the slot, and log why the stream ended; safe to call twice.

        Transports call it from ``finally``: an exception still in flight there is the reason.
        """
        if self.opened_at is not None:
            log.info("stream close: user=%s transport=%s channel=%s stream=%s duration=%.3fs "
                     "reason=%s", self.identity.user_id, self.transport, self.channel,
                     self.stream_id, time.monotonic() - self.opened_at, self._end_reason())
            self.opened_at = None
        if self._subscribed:
            self._subscribed = False
            self._open_gauge.dec()
            self.signouts.discard(self.identity.sid, self.inbox)
            self.broker.unsubscribe(self.inbox)
            self.broker.large.leave(self.inbox)
            if self.inbox.closed == SLOW:
                metrics.SLOW_CONSUMERS.labels(self.transport).inc()
        if self._slot:
            self._slot = False
            self.quota.release(self.identity.user_id, self.stream_id)

    def _end_reason(self):
        if self.inbox.closed in _ENDED_BY:
            return _ENDED_BY[self.inbox.closed]
        expires_at = self.identity.expires_at
        if expires_at is not None and time.time() >= expires_at:
            return "token expired"
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, (GeneratorExit, OSError)):
            return "error"
        # A long-poll session ends with each answer; other streams end when the client goes.
        return "answered" if self.transport == "poll" else "client closed"

    def welcome(self):
        """Return the ``connection_established`` message that starts every stream."""
        return control(schema.CONNECTION_ESTABLISHED, channel=self.channel,
                       message=f"subscribed to {self.channel}")

    # -- receiving ----------------------------------------------------------------------------

    def receive(self, timeout):
        """Return the next messages to send, in order, waiting up to *timeout* seconds.

        The wait ends early when the token expires.

        :raises StreamEnded: when the token expired or the inbox was closed (slow consumer,
            sign-out, shutdown, client gone).
        """
        expires_at = self.identity.expires_at
        if expires_at is not None:
            left = expires_at - time.time()
            if left <= 0:
                raise StreamEnded(EXPIRED)
            timeout = min(timeout, left)
        inbox = self.inbox
        items = inbox.get(timeout)
        if inbox.closed:
            raise StreamEnded(inbox.closed)
        large = ()
        if self.large is not None:  # the router may have queued large-author events
            large = [m for m in items if m.author is not None]
            if large:
                items = [m for m in items if m.author is None]
        after = in_sequence(self.position, items)
        if after is not None:
            self.position = after
            out = items if items else []  # an empty take() is the inbox's own list
        else:
            out = []
            for message in items:
                if message.event_id is None:
                    out.append(message)  # ephemeral (typing): no order to keep
                else:
                    out.extend(self._order(message))
        head = inbox.take_checkpoint()
        if head is not None:
            out.extend(self._check(head))
        if self.kind != FEED:
            return out
        out, catch_ups = self._visible(out)
        if catch_ups:
            out.extend(self._fill_large(catch_ups))
        # The checkpoint before the live events: those the router handed on after it are
        # past its head, and would carry the stream's place over what it asks to read.
        head = inbox.take_large_checkpoint()
        if head is not None:
            out.extend(self._check_large(head))
        if large:
            out.extend(self._receive_large(large))
        self._catch_up_large()
        return out

    def _order(self, message):
        """Return what to send for one live event that may not be the next one."""
        position = self.position
        if message.epoch == position.epoch and message.seq <= position.seq:
            return []  # already sent (by replay)
        if in_sequence(position, (message,)) is not None:
            self.position = message.position
            return [message]
        # A gap or a new epoch: fill it from history.
        replay = self.broker.read_shared(self.channel, position, covering=message.position)
        if replay.messages is not None:
            return self._accept(replay.messages)
        self.position = message.position
        self._reload_authors(replay)
        return [control(schema.RESYNC_REQUIRED), message]

    def _check(self, head):
        """Return what to send after the broker said the channel's head is *head*."""
        position = self.position
        if head.epoch == position.epoch and head.seq <= position.seq:
            return []  # nothing missed
        replay = self.broker.read_shared(self.channel, position, covering=head)
        if replay.messages is not None:
            return self._accept(replay.messages)
        self.position = head
        self._reload_authors(replay)
        return [control(schema.RESYNC_REQUIRED)]

    def _accept(self, messages):
        """Return the replayed *messages* after the position, and advance it."""
        position = self.position
        fresh = [m for m in messages if m.epoch == position.epoch and m.seq > position.seq]
        if fresh:
            self.position = fresh[-1].position
        return fresh

    # -- a feed's large authors ---------------------------------------------------------------

    def _visible(self, messages):
        """Apply the feed's ``_follows`` entries among *messages*; return the rest and the
        catch-ups they ask for, ``[(author, since)]``.

        The rest go out with compound ids when the stream reads the large-author channel.
        """
        out, catch_ups = [], []
        for message in messages:
            if message.type == schema.FOLLOWS_CHANGED:
                caught = self._follows_changed(message)
                if caught is not None:
                    catch_ups.append(caught)
            elif self.large is not None and message.event_id is not None:
                out.append(message.stamped(f"{message.event_id}.{self.large.event_id}"))
            else:
                out.append(message)
        return out, catch_ups

    def _follows_changed(self, message):
        """Start or stop reading one large author; return ``(author, since)`` to catch up on,
        or None."""
        entry = orjson.loads(message.data)
        author = entry["author"]
        router = self.broker.large
        if not entry["following"]:
            router.unfollow(self.inbox, author)
            return None
        if author in self.authors:
            return None  # routed here already (announced twice, or a resume's marks had it)
        since = Position.parse(entry["since"])
        if not self.authors:
            self.authors = router.join(self.inbox, (author,))
        else:
            router.follow(self.inbox, author)
        if self.large is None:
            self.large = since
        return author, since

    def _reload_authors(self, replay):
        """After a feed resync: follow entries may have been in what was lost, so take whom
        the reader follows from the feed's marks again (from the database when the feed no
        longer knows: reset after a lost publish or a failover)."""
        if self.kind != FEED:
            return
        marks = replay.marks
        if marks is None:
            if self._load_authors is None:
                return  # nobody to ask (a stream made without one): keep what it has
            try:
                marks = frozenset(self._load_authors(self.identity.user_id))
            except Unavailable as exc:
                # The database is away: keep what the stream had; its next open asks again.
                log.warning("stream %s keeps its large authors: %s", self.stream_id, exc)
                return
            self.broker.remember(self.channel, replay.version, marks)
        router, current = self.broker.large, set(self.authors)
        added = marks - current
        for author in current - marks:
            router.unfollow(self.inbox, author)
        if added and not current:
            self.authors = router.join(self.inbox, added)
        for author in added if current else ():
            router.follow(self.inbox, author)
        if added or (marks and self.large is None):
            # The client refetches what it missed; the stream goes on from now.
            self.large = self.broker.read(LARGE).head

    def _receive_large(self, messages):
        """Return what to send for live large-author events the router handed this stream."""
        out = []
        for message in messages:
            if message.author not in self.authors:
                continue  # unfollowed since it was queued
            large = self.large
            if message.epoch == large.epoch:
                if message.seq > large.seq:
                    self.large = message.position
                    out.append(message.stamped(self.cursor))
            else:
                out.extend(self._check_large(message.position))
        return out

    def _check_large(self, head):
        """Return what to send after the large-author channel's head was said to be *head*."""
        large = self.large
        if large is None or head.epoch == large.epoch and head.seq <= large.seq:
            return []
        # Every stream of the process asks at once after a gap: one read for all that
        # reaches *head*.
        return self._fill_large(shared=head)

    def _fill_large(self, catch_ups=(), shared=None):
        """Read the large-author channel after the stream's place; return its authors' events.

        *catch_ups*, ``[(author, since)]``, are authors just followed: their events after
        *since* were not handed to this stream. Those ahead of its place go out as any; one
        behind it (the author posted between the follow and this stream learning of it) gets
        ``resync_required``: the stream's one place in the channel cannot say which of such
        events a client got. History no longer holding what is asked gives it too.

        A resume reads each author's own window (:meth:`Broker.read_authors`), so a reader
        of quiet authors resumes exactly however busy the others. *shared*, a head of the
        channel after a gap in the process's live messages, reads the channel's own history
        instead, in one read shared with the process's other streams that ask at once (from
        one that reaches that head), and each author's window only when that no longer holds
        the stream's place.
        """
        large = self.large
        sinces = dict(catch_ups)
        if any(since.epoch != large.epoch for since in sinces.values()):
            # The channel restarted between a follow and this stream's place.
            self.large = self.broker.read(LARGE).head
            return [control(schema.RESYNC_REQUIRED)]
        replay = None
        if shared is not None:
            replay = self.broker.read_shared(LARGE, large, covering=shared)
        if replay is None or replay.messages is None:
            replay = self.broker.read_authors(LARGE, {
                author: min(sinces.get(author, large), large, key=lambda place: place.seq)
                for author in self.authors})
        if replay.messages is None:
            self.large = replay.head
            return [control(schema.RESYNC_REQUIRED)]
        out, behind = [], False
        for message in replay.messages:
            if message.epoch != large.epoch or message.author not in self.authors:
                if message.epoch == large.epoch and message.seq > self.large.seq:
                    self.large = message.position
                continue
            if message.seq > self.large.seq:
                self.large = message.position
                out.append(message.stamped(self.cursor))
            elif message.author in sinces and message.seq > sinces[message.author].seq:
                behind = True
        head = replay.head  # every event of the stream's authors up to it is in the replay
        if head.epoch == large.epoch and head.seq > self.large.seq:
            self.large = head
        if behind:
            out.append(control(schema.RESYNC_REQUIRED))
        return out

    def _catch_up_large(self):
        """Move the large-author place to the process's, when nothing of it is pending.

        The router hands a registered stream every event of its authors, in order, and its
        position is the last event it handled; with none of them queued here (and every read
        since this stream registered its own, or a shared one that reached the head it was asked
        about), the events in between were other authors'.
        A cursor kept near the head stays inside the channel's history window however quiet
        the stream's authors.
        """
        large, inbox = self.large, self.inbox
        if large is None or not self.authors or inbox.peek() or \
                inbox.large_checkpoint is not None:
            return
        seen = self.broker.large.position
        if seen is not None and seen.epoch == large.epoch and seen.seq > large.seq:
            self.large = seen

    # -- the whole stream ---------------------------------------------------------------------

    def batches(self, initial):
        """Yield lists of messages to write until the stream must end.

        The first batch is ``connection_established`` and *initial* (what :meth:`open`
        returned); then what :meth:`next_batch` returns, waiting for it; last what
        :meth:`ending` says (``token_expired``), or a ``ping`` on shutdown.

        :raises StreamEnded: after the last batch.
        """
        self.next_ping = time.monotonic() + self.ping_seconds
        yield [self.welcome(), *initial]
        initial = None  # noqa: F841 - an idle stream keeps nothing it already wrote
        while True:
            try:
                batch = self.next_batch()
            except StreamEnded as ended:
                if ended.last is not None:
                    yield [ended.last]
                raise
            # An empty batch still goes out when a direct write left bytes for this greenlet.
            if batch or (self.writer is not None and self.writer.pending):
                yield batch
            batch = None

    def next_batch(self, wait=True):
        """Return the next messages to write: live ones, and a ``ping`` when one is due.

        With *wait*, waits for them until the next ping at most; without, returns at once
        what is due now (possibly nothing). The stream must have started (:meth:`batches`).

        :raises StreamEnded: when the stream must end; its ``last`` is the message to write
            first, if any (``token_expired``, or a ``ping`` on shutdown).
        """
        timeout = max(self.next_ping - time.monotonic(), 0) if wait else 0
        try:
            batch = self.receive(timeout)
        except StreamEnded as ended:
            ended.last = self.ending(ended.reason)
            if ended.last is None and ended.reason == SHUTDOWN:
                ended.last = self.ping()
            raise
        if time.monotonic() >= self.next_ping:
            batch.append(self.ping())
            self.next_ping = time.monotonic() + self.ping_seconds
        return batch

    def due_in(self):
        """Return the seconds until this stream has something to do by itself: its next ping,
        or its token's expiry."""
        due = self.next_ping - time.monotonic()
        expires_at = self.identity.expires_at
        if expires_at is not None:
            due = min(due, expires_at - time.time())
        return max(due, 0.0)

    def ending(self, reason):
        """Return the message that tells the client why its stream ended, or None.

        The one rule for every transport: an expired token and a signed-out session both end
        with ``token_expired``; the client signs in again (or refreshes) and resumes.
        """
        if reason == EXPIRED:
            return self.token_expired("the token expired")
        if reason == REVOKED:
            return self.token_expired("the session was signed out")
        return None

    def delivered(self, batch):
        """Count the events of a written *batch* and their publish-to-write latency."""
        metrics.DELIVERIES.add(self.transport, batch)

    # -- writing while the stream waits -------------------------------------------------------

    def attach(self, writer):
        """Let the hub write this stream's next live messages with *writer* while it waits.

        Call it once what the transport wrote itself (headers, the first batch) is out; from
        then on the transport writes with ``writer.send`` too, so that both keep one order.

        :param writer: a :class:`~app.transports.delivery.SocketWriter`.
        """
        self.writer = writer
        self.inbox.direct = self.write_waiting

    def write_waiting(self, inbox):
        """Write *inbox*'s messages from the event loop; return False to wake the stream instead.

        Only messages :func:`in_sequence` are written here. A gap, a duplicate, a new epoch or
        a checkpoint needs the history, so the stream's greenlet handles it, as it does bytes
        the socket would not take at once.
        """
        writer = self.writer
        if not writer.ready() or inbox.checkpoint is not None or self.large is not None:
            return False  # compound ids are made per stream, by its greenlet
        items = inbox.peek()
        after = in_sequence(self.position, items)
        if after is None:
            return False
        for message in items:
            if message.type == schema.FOLLOWS_CHANGED:
                return False
        inbox.take()
        self.position = after
        framer = writer.framer
        data = items[0].framed(framer) if len(items) == 1 else \
            b"".join(message.framed(framer) for message in items)
        metrics.DELIVERIES.count(self.transport, items)
        return writer.send_nowait(data)

    @staticmethod
    def token_expired(message):
        """Return the ``token_expired`` control message that ends a stream."""
        return control(schema.TOKEN_EXPIRED, message=message)

    @staticmethod
    def ping():
        """Return a ``ping`` control message stamped now."""
        return control(schema.PING, timestamp=schema.now_ms())

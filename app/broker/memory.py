"""The in-process broker: history in memory, delivery by direct call. One process only."""
import time
from collections import deque

from app.broker.base import Broker, Replay
from app.events.wire import Message, Position, new_epoch


# How long a channel's position (epoch and sequence number) outlives its last read beyond the
# history window, as the Redis broker's channel metadata does: a client that saw the last event
# may still resume. A channel not read for that long, with no local stream, is cold.
POSITION_GRACE_SECONDS = 7 * 86400


class _Channel:
    __slots__ = ("epoch", "seq", "history", "authors", "indexed_after", "touched", "read_at",
                 "marks", "version")

    def __init__(self, now):
        self.epoch = new_epoch()
        self.seq = 0
        self.history = None  # a deque of (monotonic time, Message) once it has events
        # Events with an author, by author: {author: (last seq, deque of (time, previous
        # seq, Message))}, indexed after the seq *indexed_after* (None until an event has one).
        self.authors = None
        self.indexed_after = 0
        self.touched = now  # when it was made or last had an event
        self.read_at = now  # when a stream last opened or resumed it
        self.marks = None  # a set once known (remember), kept by publishes' marks
        self.version = 0  # publishes with a mark


class MemoryBroker(Broker):
    """Keeps each channel's recent events in a bounded deque; no other process sees them.

    Suited to development and a single gunicorn worker. History is lost on restart, which the
    epoch in every id makes visible to resuming clients (they get ``resync_required``).

    As Redis expires its keys, a channel quiet for ``history_max_seconds`` loses its history
    (a resume from before its last event gets ``resync_required``), and one nobody read for a
    week more, with no local stream, is forgotten. A forgotten (or never read) channel is cold:
    a publish skips it, and its next read starts a new epoch. Memory and work follow the
    channels in use, not every channel ever used.

    :param clock: the monotonic clock, in seconds (tests pass their own).
    """

    durable = False

    def __init__(self, clock=time.monotonic, **kwargs):
        super().__init__(**kwargs)
        self._clock = clock
        self._channels = {}
        self._once = {}  # (channel, once-id) -> when published, for the history window
        self._next_sweep = clock()

    def _channel(self, name, now):
        self._sweep(now)
        state = self._channels.get(name)
        if state is None:
            state = self._channels[name] = _Channel(now)
        state.read_at = now
        return state

    def _sweep(self, now):
        """Drop quiet channels' history, and forget long-quiet ones; at most once a minute."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(self.history_max_seconds, 60)
        quiet_since = now - self.history_max_seconds
        forget_since = quiet_since - POSITION_GRACE_SECONDS
        listened = self.hub.channels
        once_since = now - self.once_ms / 1000
        self._once = {key: at for key, at in self._once.items() if at >= once_since}
        for name, state in list(self._channels.items()):
            if state.read_at < forget_since and name not in listened:
                del self._channels[name]
            elif state.touched < quiet_since:
                state.history = state.authors = None  # every event in it is past the window

    def publish(self, channels, event, mark=None, once=None):
        """Append *event* to each channel's history and hand it to local subscribers.

        A cold channel gets nothing, and None for its id.
        """
        head, tail = event.encode()
        ids = []
        now = self._clock()
        self._sweep(now)
        if once is not None:
            if len(channels) != 1:
                raise ValueError("a once-id publishes to one channel")
            if (channels[0], once) in self._once:
                return [None]
            self._once[channels[0], once] = now
        for name in channels:
            event_id = None
            if event.replayable:
                state = self._channels.get(name)
                if state is None:
                    ids.append(None)
                    continue
                state.seq += 1
                event_id = Position(state.epoch, state.seq).event_id
                if mark:
                    state.version += 1
                if mark and state.marks is not None:
                    if mark[0] == "+":
                        state.marks.add(mark[1:])
                    else:
                        state.marks.discard(mark[1:])
            message = Message(event.type, head + event_id.encode() + tail if event_id else head,
                              event_id, event.ts, event.author)
            if event_id:
                if state.history is None:
                    state.history = deque(maxlen=self.history_max_events)
                self._trim(state, now)
                state.history.append((now, message))
                state.touched = now
                if event.author:
                    self._index(state, event.author, now, message)
            ids.append(event_id)
            self.hub.dispatch(name, message)
        self.stats["published"] += 1
        return ids

    def _index(self, state, author, now, message):
        """Keep *message* among its author's last events (:meth:`read_authors`)."""
        if state.authors is None:
            state.authors, state.indexed_after = {}, state.seq - 1
        last, events = state.authors.get(author, (0, None))
        if events is None:
            events = deque(maxlen=self.history_max_events)
        events.append((now, last, message))
        state.authors[author] = (state.seq, events)

    def restart(self, channel):
        """Start *channel* over: a new epoch, no history, marks unknown."""
        state = self._channels.get(channel)
        if state is not None:
            state.epoch, state.seq, state.history, state.marks = new_epoch(), 0, None, None
            state.authors = None
            state.version += 1  # a lookup begun before it is not to be stored
            self.hub.checkpoint(channel, Position(state.epoch, 0))

    def _trim(self, state, now):
        """Drop events older than the history's time window."""
        history, horizon = state.history, now - self.history_max_seconds
        while history and history[0][0] < horizon:
            history.popleft()

    def read(self, channel, after=None):
        """Return the events of *channel* after *after* held in memory, or None to resync."""
        now = self._clock()
        state = self._channel(channel, now)
        head = Position(state.epoch, state.seq)
        known = (None if state.marks is None else frozenset(state.marks), state.version)
        if after is None:
            return Replay(head, [], *known)
        if after.epoch != state.epoch or after.seq > state.seq:
            return Replay(head, None, *known)
        missed = state.seq - after.seq
        if missed == 0:
            return Replay(head, [], *known)
        if state.history is None:
            return Replay(head, None, *known)
        self._trim(state, now)
        if missed > len(state.history):
            return Replay(head, None, *known)
        return Replay(head, [message for _, message in list(state.history)[-missed:]], *known)

    def read_authors(self, channel, after):
        """Return the events of the authors in *after* held after each one's position, or
        None to resync."""
        now = self._clock()
        state = self._channel(channel, now)
        head = Position(state.epoch, state.seq)
        horizon = now - self.history_max_seconds
        found = []
        for author, position in after.items():
            if position.epoch != state.epoch or position.seq > state.seq:
                return Replay(head, None)
            if position.seq == state.seq:
                continue
            if state.authors is None or position.seq < state.indexed_after:
                return Replay(head, None)
            last, events = state.authors.get(author, (0, ()))
            if last <= position.seq:
                continue
            newer = []
            for at, previous, message in reversed(events):
                if message.seq <= position.seq:
                    break
                newer.append((at, previous, message))
            at, previous, _ = newer[-1]
            if previous > position.seq or at < horizon:
                return Replay(head, None)  # trimmed, or past the time window
            found.extend(message for _, _, message in newer)
            if len(found) > self.history_max_events:
                return Replay(head, None)  # more than any channel's history hands out
        found.sort(key=lambda message: message.seq)
        return Replay(head, found)

    def remember(self, channel, version, names):
        """Make *names* the marks of *channel*, unless a mark was published since *version*."""
        state = self._channels.get(channel)
        if state is not None and state.version == version:
            state.marks = set(names)

    def _listen(self, channel):
        """Nothing to do: publish hands messages to the hub directly."""

    def _unlisten(self, channel):
        """Nothing to do, and the channel's history stays for clients that resume."""

    def ping(self):
        """The in-process broker is always up."""

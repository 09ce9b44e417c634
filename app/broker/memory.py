"""The in-process broker: history in memory, delivery by direct call. One process only."""
import time
from collections import deque

from app.broker.base import Broker, Replay
from app.events.wire import Message, Position, new_epoch


class _Channel:
    __slots__ = ("epoch", "seq", "history")

    def __init__(self, max_events):
        self.epoch = new_epoch()
        self.seq = 0
        self.history = deque(maxlen=max_events)  # (monotonic time, Message)


class MemoryBroker(Broker):
    """Keeps each channel's recent events in a bounded deque; no other process sees them.

    Suited to development and a single gunicorn worker. History is lost on restart, which the
    epoch in every id makes visible to resuming clients (they get ``resync_required``).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._channels = {}
        self._slots = {}

    def _channel(self, name):
        state = self._channels.get(name)
        if state is None:
            state = self._channels[name] = _Channel(self.history_max_events)
        return state

    def publish(self, channels, event):
        """Append *event* to each channel's history and hand it to local subscribers."""
        head, tail = event.encode()
        ids = []
        now = time.monotonic()
        for name in channels:
            event_id = None
            if event.replayable:
                state = self._channel(name)
                state.seq += 1
                event_id = Position(state.epoch, state.seq).event_id
            message = Message(event.type, head + event_id.encode() + tail if event_id else head,
                              event_id, event.ts)
            if event_id:
                self._trim(state, now)
                state.history.append((now, message))
            ids.append(event_id)
            self.hub.dispatch(name, message)
        self.stats["published"] += 1
        return ids

    def _trim(self, state, now):
        """Drop events older than the history's time window."""
        history, horizon = state.history, now - self.history_max_seconds
        while history and history[0][0] < horizon:
            history.popleft()

    def read(self, channel, after=None):
        """Return the events of *channel* after *after* held in memory, or None to resync."""
        state = self._channel(channel)
        head = Position(state.epoch, state.seq)
        if after is None:
            return Replay(head, [])
        if after.epoch != state.epoch or after.seq > state.seq:
            return Replay(head, None)
        missed = state.seq - after.seq
        if missed == 0:
            return Replay(head, [])
        self._trim(state, time.monotonic())
        if missed > len(state.history):
            return Replay(head, None)
        return Replay(head, [message for _, message in list(state.history)[-missed:]])

    def _listen(self, channel):
        """Nothing to do: publish hands messages to the hub directly."""

    def _unlisten(self, channel):
        """Nothing to do, and the channel's history stays for clients that resume."""

    def revoke(self, sid):
        """Close the streams of *sid*; this process is the only one."""
        self.hub.revoke(sid)

    def acquire_slot(self, user_id, stream_id, limit):
        """Count the stream in memory."""
        streams = self._slots.setdefault(user_id, set())
        if len(streams) >= limit:
            return False
        streams.add(stream_id)
        return True

    def release_slot(self, user_id, stream_id):
        """Forget the stream."""
        streams = self._slots.get(user_id)
        if streams is not None:
            streams.discard(stream_id)
            if not streams:
                del self._slots[user_id]

    def ping(self):
        """The in-process broker is always up."""

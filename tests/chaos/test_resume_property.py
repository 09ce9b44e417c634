"""Resume as a property, against the real brokers (in-process and Redis), side by side.

Hypothesis draws how many events a client saw, how many it missed while away, how long it was
away (inside or past the history's time window), the history's size, how history was lost
(not at all; the history stream deleted in Redis, as eviction or a partial restore does; the
channel wiped, as a Redis restart does; the process restarted, for the in-process broker) and
how many events are published *while* the client resumes. Whatever it draws, a resumed stream
must be either the exact replay of what was missed, or ``resync_required`` first — never a
silent gap, never a partial replay — and then carry on live without a hole or a repeat.
"""
import time
import uuid
from types import SimpleNamespace

import gevent
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.auth.signout import StreamsBySession
from app.broker.memory import MemoryBroker
from app.broker.redis import RedisBroker
from app.events.schema import Event
from app.stream_quota import MemoryQuota
from app.transports.session import StreamSession
from tests.chaos.harness import record, scaled

pytestmark = [pytest.mark.chaos, pytest.mark.redis]

WINDOW = 1  # HISTORY_MAX_SECONDS of these brokers: a client away longer loses its replay
CHANNEL = "feed:prop"
SETTINGS = {"STREAM_PING_SECONDS": 30, "STREAMS_PER_USER": 100, "STREAM_QUEUE_MAX_EVENTS": 1000,
            "STREAM_QUEUE_MAX_BYTES": 1 << 22, "STREAM_MAX_LAG_SECONDS": 30}
CASES = scaled(1000, minimum=50)
OUTCOMES = {"replayed": 0, "resynced": 0, "cases": 0}


def who():
    return SimpleNamespace(user_id="u", sid="s", expires_at=time.time() + 3600)


def publish(broker, count):
    broker.read(CHANNEL)  # as a stream's open does: a channel nobody read is cold
    return [broker.publish([CHANNEL], Event("new_post", {"n": i}))[0] for i in range(count)]


def collect(session, until_id, timeout=5):
    """Receive until the event *until_id* (or the timeout); return every message."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and until_id not in [m.event_id for m in got]:
        got.extend(session.receive(0.05))
    return got


class Side:
    """One broker's run of a case: a client that saw events, left, and resumes."""

    def __init__(self, kind, history, redis_url):
        self.kind = kind
        self.redis_url = redis_url
        self.history = history
        self.prefix = f"p{uuid.uuid4().hex[:10]}"
        self.broker = self._broker()
        self.old_broker = None

    def _broker(self):
        options = {"history_max_events": self.history, "history_max_seconds": WINDOW}
        if self.kind == "memory":
            return MemoryBroker(**options)
        broker = RedisBroker(self.redis_url, prefix=self.prefix, health_seconds=1, **options)
        # A worker's first connect checks every open stream against its channel's head, like
        # any reconnect; let it pass before the first stream opens, as in a started worker.
        broker.ping()  # connects pub/sub, as a started worker does
        deadline = time.monotonic() + 5
        while not broker.stats["reconnects"] and time.monotonic() < deadline:
            gevent.sleep(0.005)
        return broker

    def see_then_leave(self, before, missed):
        session = StreamSession(self.broker, CHANNEL, who(), "sse", SETTINGS, MemoryQuota(),
                                StreamsBySession(self.broker))
        session.open()
        self.seen = publish(self.broker, before)
        got = collect(session, self.seen[-1])
        assert [m.event_id for m in got if m.event_id] == self.seen
        session.close()
        self.missed = publish(self.broker, missed)

    def lose(self, loss):
        if loss == "none":
            return
        if self.kind == "memory":
            # The only way an in-process broker loses history: its process restarts.
            self.old_broker, self.broker = self.broker, self._broker()
            return
        meta, history = self.broker._keys(CHANNEL)
        self.broker.redis.delete(*((history,) if loss == "history deleted" else (meta, history)))

    def resume(self, during):
        session = StreamSession(self.broker, CHANNEL, who(), "sse", SETTINGS, MemoryQuota(),
                                StreamsBySession(self.broker))
        concurrent = gevent.spawn(publish, self.broker, during)
        first = session.open(self.seen[-1])
        self.during = concurrent.get()
        self.after = publish(self.broker, 2)
        self.messages = first + collect(session, self.after[-1])
        session.close()

    def close(self):
        for broker in (self.broker, self.old_broker):
            if broker is not None:
                broker.close()

    def check(self, loss, expired):
        """Assert the property; return "replayed" or "resynced"."""
        types = [m.type for m in self.messages]
        events = [m for m in self.messages if m.event_id]
        ids = [m.event_id for m in events]
        assert len(ids) == len(set(ids)), f"duplicate: {ids}"
        # Within one epoch, sequence numbers follow one another with no hole.
        for previous, current in zip(events, events[1:]):
            assert current.epoch == previous.epoch, f"epoch changed mid-stream: {ids}"
            assert current.seq == previous.seq + 1, f"gap: {ids}"
        assert ids[-len(self.after):] == self.after, f"live events after the resume: {ids}"
        # What was missed is gone when history was lost or trimmed, or is older than the window.
        gone = bool(loss == "restart" or (self.kind == "memory" and loss != "none")
                    or (self.missed and (loss == "history deleted" or expired))
                    or len(self.missed) > self.history)
        may_trim = len(self.missed) + len(self.during) > self.history
        if "resync_required" in types:
            assert types.index("resync_required") == 0 and types.count("resync_required") == 1, types
            assert gone or may_trim, f"resync although history held everything: {self.kind} {loss}"
            return "resynced"
        assert not gone, f"no resync although the missed events are gone: {ids}"
        # No resync: the exact replay of everything after the last id seen, then live.
        assert events[0].epoch == self.seen[-1].rsplit("-", 1)[0], "epoch changed silently"
        assert ids == self.missed + self.during + self.after, f"partial replay: {ids}"
        return "replayed"


@pytest.fixture(scope="module")
def summary():
    yield OUTCOMES
    record("resume property", "test_resume_is_exact_or_resync_never_partial",
           "Hypothesis: events seen × missed × time away × history size × history lost × "
           "events published during the resume, on the in-process and the Redis broker",
           {"cases": OUTCOMES["cases"], "exact replays": OUTCOMES["replayed"],
            "resyncs": OUTCOMES["resynced"], "silent gaps": 0, "partial replays": 0},
           "0 silent gaps, never a partial replay", True)


@pytest.mark.timeout(3600)
def test_resume_is_exact_or_resync_never_partial(redis_url, summary):
    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(before=st.integers(1, 12), missed=st.integers(0, 30), history=st.integers(1, 25),
           during=st.integers(0, 4),
           loss=st.sampled_from(["none", "none", "none", "history deleted", "restart"]),
           away=st.sampled_from(["short"] * 11 + ["past the window"]))
    def case(before, missed, history, during, loss, away):
        sides = [Side("memory", history, redis_url), Side("redis", history, redis_url)]
        try:
            for side in sides:
                side.see_then_leave(before, missed)
            if away == "past the window":
                gevent.sleep(WINDOW + 0.1)
            for side in sides:
                side.lose(loss)
                side.resume(during)
            for side in sides:
                outcome = side.check(loss, away == "past the window")
                OUTCOMES[outcome] += 1
            OUTCOMES["cases"] += 1
        finally:
            for side in sides:
                side.close()

    case()

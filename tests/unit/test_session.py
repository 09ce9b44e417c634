"""The stream session: resume, dedupe, gap repair, resync, limits, expiry, revocation."""
import time
from types import SimpleNamespace

import orjson
import pytest

from app.auth.signout import StreamsBySession
from app.broker.hub import SHUTDOWN
from app.broker.memory import MemoryBroker
from app.events.schema import Event
from app.events.wire import Position
from app.stream_quota import MemoryQuota
from app.transports.session import StreamEnded, StreamRefused, StreamSession

SETTINGS = {"STREAM_PING_SECONDS": 0.2, "STREAMS_PER_USER": 3, "STREAM_QUEUE_MAX_EVENTS": 100,
            "STREAM_QUEUE_MAX_BYTES": 1 << 20, "STREAM_MAX_LAG_SECONDS": 10}


@pytest.fixture
def broker():
    broker = MemoryBroker(history_max_events=20)
    yield broker
    broker.close()


def identity(user="u1", sid="s1", expires_in=3600):
    return SimpleNamespace(user_id=user, sid=sid, expires_at=time.time() + expires_in)


@pytest.fixture
def quota():
    return MemoryQuota()


@pytest.fixture
def signouts(broker):
    return StreamsBySession(broker)


@pytest.fixture
def session_for(broker, quota, signouts):
    def build(channel="feed:u1", **kwargs):
        return StreamSession(broker, channel, identity(**kwargs), "sse", SETTINGS, quota, signouts)
    return build


def publish(broker, count, channel="feed:u1"):
    broker.read(channel)  # as a stream's open does: a channel nobody read is cold
    return [broker.publish([channel], Event("new_post", {"n": i}))[0] for i in range(count)]


def types(messages):
    return [m.type for m in messages]


def ids(messages):
    return [m.event_id for m in messages]


def test_without_an_id_it_starts_at_the_head(broker, session_for):
    publish(broker, 3)
    session = session_for()
    assert session.open() == []
    later = publish(broker, 2)
    assert ids(session.receive(1)) == later


def test_resume_replays_exactly_then_goes_live_without_duplicates(broker, session_for):
    sent = publish(broker, 5)
    session = session_for()
    assert ids(session.open(sent[1])) == sent[2:]
    # Events that are both replayed and delivered live are sent once.
    broker.hub.dispatch("feed:u1", broker.read("feed:u1", Position.parse(sent[3])).messages[0])
    later = publish(broker, 1)
    assert ids(session.receive(1)) == later


def test_an_id_no_longer_held_gives_resync_then_live(broker, session_for):
    publish(broker, 30)  # history holds 20
    session = session_for()
    head = broker.read("feed:u1").head
    first = session.open(Position(head.epoch, 2).event_id)
    assert types(first) == ["resync_required"]
    assert ids(session.receive(0.05)) == []
    later = publish(broker, 1)
    assert ids(session.receive(1)) == later


@pytest.mark.parametrize("bad_id", ["garbage", "abc-xyz", "-1", "x" * 100, "ffff-999999"])
def test_malformed_or_unknown_ids_give_resync(broker, session_for, bad_id):
    publish(broker, 2)
    session = session_for()
    assert types(session.open(bad_id)) == ["resync_required"]


def test_a_gap_on_the_live_path_is_filled_from_history(broker, session_for):
    session = session_for()
    session.open()
    broker.hub.remove(session.inbox)  # as if pub/sub lost the next two messages
    missed = publish(broker, 2)
    broker.hub.add(session.inbox)
    last = publish(broker, 1)
    assert ids(session.receive(1)) == missed + last


def test_a_gap_history_no_longer_holds_gives_resync_then_the_event(broker, session_for):
    session = session_for()
    session.open()
    broker.hub.remove(session.inbox)
    publish(broker, 25)
    broker.hub.add(session.inbox)
    last = publish(broker, 1)
    received = session.receive(1)
    assert types(received) == ["resync_required", "new_post"]
    assert received[1].event_id == last[0]


def test_a_checkpoint_ahead_of_the_session_fills_the_gap(broker, session_for):
    session = session_for()
    session.open()
    broker.hub.remove(session.inbox)
    missed = publish(broker, 3)
    broker.hub.add(session.inbox)
    broker.hub.checkpoint("feed:u1", broker.read("feed:u1").head)
    assert ids(session.receive(1)) == missed


def test_a_checkpoint_of_a_lost_history_gives_resync(broker, session_for):
    session = session_for()
    session.open()
    publish(broker, 1)
    session.receive(1)
    del broker._channels["feed:u1"]  # the history is gone, as after a restart
    head = broker.read("feed:u1").head
    broker.hub.checkpoint("feed:u1", head)
    assert types(session.receive(1)) == ["resync_required"]
    assert session.position == head
    later = publish(broker, 1)
    assert ids(session.receive(1)) == later


def test_the_per_user_limit_refuses_one_more_and_frees_on_close(broker, session_for):
    sessions = [session_for() for _ in range(3)]
    for session in sessions:
        session.open()
    with pytest.raises(StreamRefused) as refused:
        session_for().open()
    sessions[0].close()
    session_for().open()


def test_batches_start_with_connection_established_and_ping_when_idle(broker, session_for):
    session = session_for()
    batches = session.batches(session.open())
    first = next(batches)
    assert types(first) == ["connection_established"]
    assert orjson.loads(first[0].data)["channel"] == "feed:u1"
    started = time.monotonic()
    assert types(next(batches)) == ["ping"]
    assert time.monotonic() - started < 1


def test_an_expired_token_ends_the_stream_with_token_expired(broker, session_for):
    session = session_for(expires_in=0.3)
    batches = session.batches(session.open())
    seen = []
    with pytest.raises(StreamEnded):
        for batch in batches:
            seen.extend(types(batch))
    assert seen[0] == "connection_established" and seen[-1] == "token_expired"


def test_signing_out_ends_the_stream_with_token_expired(broker, session_for, signouts):
    session = session_for(sid="gone")
    batches = session.batches(session.open())
    next(batches)
    signouts.end("gone")
    assert types(next(batches)) == ["token_expired"]
    with pytest.raises(StreamEnded):
        next(batches)


def test_shutdown_ends_the_stream_after_a_final_ping(broker, session_for):
    session = session_for()
    batches = session.batches(session.open())
    next(batches)
    session.inbox.close(SHUTDOWN)
    assert types(next(batches)) == ["ping"]
    with pytest.raises(StreamEnded):
        next(batches)

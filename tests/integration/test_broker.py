"""One test suite for every broker: the in-process one and Redis pass the same tests."""
import time

import pytest

from app.auth.signout import REVOKED, StreamsBySession
from app.broker.memory import MemoryBroker
from app.events.schema import TYPING, Event
from app.events.wire import Position
from app.stream_quota import MemoryQuota
from app.transports.delivery import SLOW, Inbox
from tests.support.waits import wait_until


def make_broker(kind, request, **options):
    if kind == "memory":
        return MemoryBroker(**options)
    from app.broker.redis import RedisBroker

    url = request.getfixturevalue("redis_url")
    return RedisBroker(url, prefix=request.getfixturevalue("redis_prefix"), **options)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def broker_factory(request):
    """Build brokers of one kind; every one is closed after the test."""
    made = []

    def build(**options):
        broker = make_broker(request.param, request, **options)
        made.append(broker)
        return broker

    yield build
    for broker in made:
        broker.close()


@pytest.fixture
def broker(broker_factory):
    return broker_factory(history_max_events=50)


def event(n, type_="new_post"):
    return Event(type_, {"post_id": f"p{n}", "n": n})


def opened(broker, *channels):
    """Read each channel's head, as a stream's open does: a channel nobody read is cold."""
    for channel in channels:
        broker.read(channel)


def publish(broker, channel, count, start=0):
    opened(broker, channel)
    return [broker.publish([channel], event(i))[0] for i in range(start, start + count)]


def drain(inbox, want, timeout=5):
    """Return up to *want* messages of *inbox* (checkpoints are not messages)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(inbox.get(0.1))
        inbox.take_checkpoint()
    return got


def test_publish_returns_increasing_ids_per_channel(broker):
    ids = publish(broker, "feed:a", 3)
    positions = [Position.parse(i) for i in ids]
    assert [p.seq for p in positions] == [1, 2, 3]
    assert len({p.epoch for p in positions}) == 1
    opened(broker, "feed:b")
    other = broker.publish(["feed:b"], event(9))[0]
    assert Position.parse(other).seq == 1


def test_one_event_to_many_channels_gets_an_id_in_each(broker):
    opened(broker, "feed:a", "feed:b", "post:p")
    ids = broker.publish(["feed:a", "feed:b", "post:p"], event(1))
    assert [Position.parse(i).seq for i in ids] == [1, 1, 1]
    for channel, event_id in zip(["feed:a", "feed:b", "post:p"], ids):
        assert broker.read(channel).head == Position.parse(event_id)


def test_head_of_an_unused_channel_is_seq_zero(broker):
    head = broker.read("feed:new").head
    assert head.seq == 0 and head.epoch


def test_a_channel_nobody_opened_is_cold_and_gets_nothing(broker):
    assert broker.publish(["feed:cold", "feed:warm"], event(1))[0] is None  # feed:warm too
    opened(broker, "feed:warm")
    assert broker.publish(["feed:cold", "feed:warm"], event(2)) == [
        None, f"{broker.read('feed:warm').head.epoch}-1"]
    head = broker.read("feed:cold").head  # the first read warms it, from nothing
    assert head.seq == 0
    assert Position.parse(broker.publish(["feed:cold"], event(3))[0]).seq == 1


def test_a_publish_with_a_once_id_happens_once(broker):
    opened(broker, "large")
    inbox = Inbox("large")
    broker.subscribe(inbox)
    [first] = broker.publish(["large"], event(1), once="e1")
    assert broker.publish(["large"], event(1), once="e1") == [None]  # a relay's repeat
    [other] = broker.publish(["large"], event(2), once="e2")
    start = Position(broker.read("large").head.epoch, 0)
    assert [m.event_id for m in broker.read("large", start).messages] == [first, other]
    assert [m.event_id for m in drain(inbox, 2)] == [first, other]
    assert drain(inbox, 1, timeout=0.2) == []


def test_a_restart_starts_a_warm_channel_over_and_leaves_a_cold_one_cold(broker):
    ids = publish(broker, "feed:warm", 2)
    broker.restart("feed:warm")
    broker.restart("feed:cold")
    head = broker.read("feed:warm").head
    assert head.epoch != Position.parse(ids[0]).epoch and head.seq == 0
    assert broker.publish(["feed:cold"], event(3)) == [None]


def test_one_event_to_a_thousand_channels_some_cold_gets_each_its_own_id(broker):
    channels = [f"feed:u{n}" for n in range(1203)]  # more than one Redis script's batch
    warm = channels[::3] + channels[-1:]
    opened(broker, *warm)
    inbox = Inbox(channels[-1])
    broker.subscribe(inbox)
    ids = broker.publish(channels, event(1))
    assert [channel for channel, i in zip(channels, ids) if i is not None] == warm
    assert all(Position.parse(i).seq == 1 for i in ids if i is not None)
    assert [m.event_id for m in drain(inbox, 1)] == ids[-1:]


def test_replay_after_an_id_returns_later_events_in_order(broker):
    ids = publish(broker, "feed:a", 5)
    replay = broker.read("feed:a", Position.parse(ids[1]))
    assert [m.event_id for m in replay.messages] == ids[2:]
    assert replay.head == Position.parse(ids[-1])
    assert b'"n":4' in replay.messages[-1].data


def test_replay_at_the_head_is_empty(broker):
    ids = publish(broker, "feed:a", 2)
    assert broker.read("feed:a", Position.parse(ids[-1])).messages == []


def test_replay_of_an_unknown_epoch_or_future_id_says_resync(broker):
    publish(broker, "feed:a", 2)
    head = broker.read("feed:a").head
    assert broker.read("feed:a", Position("deadbeef", 1)).messages is None
    assert broker.read("feed:a", Position(head.epoch, head.seq + 5)).messages is None


def test_replay_of_a_trimmed_position_says_resync(broker_factory):
    broker = broker_factory(history_max_events=5)
    ids = publish(broker, "feed:a", 10)
    assert broker.read("feed:a", Position.parse(ids[3])).messages is None  # 6 missed, 5 held
    held = broker.read("feed:a", Position.parse(ids[4])).messages
    assert [m.event_id for m in held] == ids[5:]


def test_history_older_than_the_time_window_is_not_replayed(broker_factory):
    broker = broker_factory(history_max_events=50, history_max_seconds=1)
    ids = publish(broker, "feed:a", 2)
    time.sleep(1.2)
    later = publish(broker, "feed:a", 1, start=2)
    assert broker.read("feed:a", Position.parse(ids[0])).messages is None
    assert [m.event_id for m in broker.read("feed:a", Position.parse(ids[1])).messages] == later


def test_live_delivery_reaches_every_local_subscriber_in_order(broker):
    inboxes = [Inbox("post:x"), Inbox("post:x")]
    for inbox in inboxes:
        broker.subscribe(inbox)
    ids = publish(broker, "post:x", 5)
    for inbox in inboxes:
        assert [m.event_id for m in drain(inbox, 5)] == ids


def test_subscribers_of_other_channels_get_nothing(broker):
    inbox = Inbox("post:other")
    broker.subscribe(inbox)
    publish(broker, "post:x", 2)
    assert drain(inbox, 1, timeout=0.3) == []


def test_live_message_matches_history(broker):
    inbox = Inbox("post:x")
    broker.subscribe(inbox)
    [event_id] = publish(broker, "post:x", 1)
    [live] = drain(inbox, 1)
    [stored] = broker.read("post:x", Position(Position.parse(event_id).epoch, 0)).messages
    assert live.data == stored.data and live.event_id == stored.event_id == event_id
    assert f'"id":"{event_id}"'.encode() in live.data


def test_ephemeral_events_are_delivered_but_never_stored(broker):
    inbox = Inbox("post:x")
    broker.subscribe(inbox)
    ids = broker.publish(["post:x"], Event(TYPING, {"post_id": "x"}))
    assert ids == [None]
    [live] = drain(inbox, 1)
    assert live.event_id is None and live.type == TYPING and b'"id"' not in live.data
    assert broker.read("post:x").head.seq == 0


def test_unsubscribed_inbox_gets_nothing_more(broker):
    inbox = Inbox("post:x")
    broker.subscribe(inbox)
    broker.unsubscribe(inbox)
    publish(broker, "post:x", 1)
    assert drain(inbox, 1, timeout=0.3) == []


def test_an_inbox_over_its_bound_is_closed_as_slow(broker):
    inbox = Inbox("post:x", max_events=3)
    broker.subscribe(inbox)
    publish(broker, "post:x", 5)
    wait_until(lambda: inbox.closed, timeout=5)
    assert inbox.closed == SLOW


def test_a_sign_out_in_another_process_closes_the_streams_of_that_session_only(
        broker_factory):
    here, there = broker_factory(), broker_factory()
    streams, elsewhere = StreamsBySession(here), StreamsBySession(there)
    mine, other = Inbox("feed:a"), Inbox("feed:a")
    streams.add("s1", mine)
    streams.add("s2", other)
    elsewhere.add("s3", Inbox("feed:b"))  # subscribes that process to sign-outs
    # In-process there is one process: the sign-out is published where the streams are.
    publisher = here if isinstance(here, MemoryBroker) else there
    publisher.publish([streams.channel], Event("session_ended", {"sid": "s1"}))
    wait_until(lambda: mine.closed, timeout=5)
    assert mine.closed == REVOKED and not other.closed


def test_the_stream_quota_is_per_user():
    quota = MemoryQuota()
    assert quota.acquire("u1", "s1", 2)
    assert quota.acquire("u1", "s2", 2)
    assert not quota.acquire("u1", "s3", 2)
    assert quota.acquire("u2", "s4", 2)
    quota.release("u1", "s1")
    assert quota.acquire("u1", "s3", 2)


def test_ping_answers_when_up(broker):
    assert broker.ping() is None

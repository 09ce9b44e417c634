"""What only the Redis broker does: one pub/sub connection per process, and no silent gap."""
import time
from types import SimpleNamespace

import gevent
from gevent.event import Event as GeventEvent
import pytest

from app.auth.signout import StreamsBySession
from app.broker import BrokerUnavailable
from app.broker.redis import RedisBroker
from app.events.schema import Event
from app.events.wire import Position
from app.stream_quota import MemoryQuota, RedisQuota
from app.transports.delivery import Inbox
from app.transports.session import StreamSession
from tests.support.redis_server import RedisServer
from tests.support.waits import wait_until

pytestmark = pytest.mark.redis

SETTINGS = {"STREAM_PING_SECONDS": 5, "STREAMS_PER_USER": 100, "STREAM_QUEUE_MAX_EVENTS": 1000,
            "STREAM_QUEUE_MAX_BYTES": 1 << 22, "STREAM_MAX_LAG_SECONDS": 10}


@pytest.fixture
def broker(redis_url, redis_prefix):
    broker = RedisBroker(redis_url, prefix=redis_prefix, health_seconds=0.5)
    yield broker
    broker.close()


def open_session(broker, channel="feed:u1", quota=None):
    who = SimpleNamespace(user_id="u1", sid="s1", expires_at=time.time() + 3600)
    session = StreamSession(broker, channel, who, "sse", SETTINGS, quota or MemoryQuota(),
                            StreamsBySession(broker))
    session.open()
    return session


def receive_events(session, count, timeout=10):
    got = []
    deadline = time.monotonic() + timeout
    while len([m for m in got if m.event_id]) < count and time.monotonic() < deadline:
        got.extend(session.receive(0.2))
    return got


def publish(broker, count, channel="feed:u1", start=0):
    return [broker.publish([channel], Event("new_post", {"n": i}))[0]
            for i in range(start, start + count)]


def pubsub_clients(broker):
    return [c for c in broker.redis.client_list(_type="pubsub")
            if c["name"].startswith(f"{broker.prefix}-pubsub-")]


def test_all_streams_of_a_process_share_one_pubsub_connection(broker):
    inboxes = [Inbox(f"feed:u{i}") for i in range(20)] + [Inbox("post:p") for _ in range(20)]
    for inbox in inboxes:
        broker.subscribe(inbox)
    assert len(pubsub_clients(broker)) == 1
    assert pubsub_clients(broker)[0]["sub"] == "21"


def test_a_channel_is_subscribed_with_its_first_stream_and_dropped_with_its_last(broker):
    name = f"{broker.prefix}:{{post:p}}"
    first, second = Inbox("post:p"), Inbox("post:p")
    broker.subscribe(first)
    broker.subscribe(second)
    assert name.encode() in broker.redis.pubsub_channels(f"{broker.prefix}:*")
    broker.unsubscribe(first)
    assert name.encode() in broker.redis.pubsub_channels(f"{broker.prefix}:*")
    broker.unsubscribe(second)
    wait_until(lambda: name.encode() not in broker.redis.pubsub_channels(f"{broker.prefix}:*"))


def test_a_publish_does_not_renew_a_channel_only_reads_and_its_streams_do(broker):
    meta = broker._keys("feed:u1")[0]
    broker.read("feed:u1")
    broker.redis.pexpire(meta, 60_000)
    publish(broker, 2)
    assert broker.redis.pttl(meta) <= 60_000  # an author's posts keep no follower's feed warm
    session = open_session(broker)  # a stream reads, and its worker keeps the channel warm
    broker.redis.pexpire(meta, 60_000)
    broker.keep_warm()
    assert broker.redis.pttl(meta) > 86_400_000
    sent = publish(broker, 1)
    assert [m.event_id for m in receive_events(session, 1)] == sent


def test_a_stream_whose_channel_went_cold_resyncs_and_gets_what_follows(broker):
    session = open_session(broker)
    seen = publish(broker, 1)
    assert [m.event_id for m in receive_events(session, 1)] == seen
    broker.redis.delete(*broker._keys("feed:u1"))  # lost (evicted, say) while a stream listens
    assert broker.publish(["feed:u1"], Event("new_post", {"lost": True})) == [None]
    broker.keep_warm()  # a new epoch; the stream is told its head
    later = broker.publish(["feed:u1"], Event("new_post", {"n": 9}))
    messages = receive_events(session, 1)
    assert [m.type for m in messages] == ["resync_required", "new_post"]
    assert messages[-1].event_id == later[0]


def test_scripts_redis_forgot_run_once_after_loading(broker):
    quota = RedisQuota(broker.redis, broker.prefix)
    broker.redis.script_flush()  # as after a restart or a failover: every EVALSHA is NOSCRIPT
    try:
        session = open_session(broker, quota=quota)  # the stream slot's script, pipelined
        assert broker.redis.zcard(quota.key("u1")) == 1
    finally:
        quota.close()
    broker.redis.script_flush()
    sent = publish(broker, 1)
    assert [m.event_id for m in receive_events(session, 1)] == sent
    assert broker.read("feed:u1").head.seq == 1  # ran once, not once per attempt


def test_a_killed_pubsub_connection_loses_nothing(broker):
    session = open_session(broker)
    before = publish(broker, 3)
    for _ in range(3):
        [client] = pubsub_clients(broker)
        broker.redis.client_kill_filter(_id=client["id"])
        # Published while the worker is reconnecting: pub/sub alone would drop these.
        before += publish(broker, 5, start=len(before))
        wait_until(lambda: len(pubsub_clients(broker)) == 1)
    before += publish(broker, 2, start=len(before))
    received = [m.event_id for m in receive_events(session, len(before))]
    assert received == before


def test_the_process_knows_the_number_of_reconnects(broker):
    open_session(broker)
    count = broker.stats["reconnects"]
    [client] = pubsub_clients(broker)
    broker.redis.client_kill_filter(_id=client["id"])
    wait_until(lambda: broker.stats["reconnects"] == count + 1)


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


def test_a_redis_restart_makes_resuming_clients_resync(private_redis):
    broker = RedisBroker(private_redis.url, prefix="r", health_seconds=0.5)
    try:
        session = open_session(broker)
        publish(broker, 2)
        assert len(receive_events(session, 2)) == 2
        private_redis.restart()
        # Open streams stay open; the worker reconnects and finds the history gone.
        messages = receive_events(session, 0, timeout=1) + \
            [m for m in _until_resync(session)]
        assert "resync_required" in [m.type for m in messages]
        later = _publish_when_up(broker, 1)
        assert [m.event_id for m in receive_events(session, 1)] == later
    finally:
        broker.close()


def test_a_publish_lost_in_an_outage_makes_clients_resync_once_redis_is_back(private_redis):
    broker = RedisBroker(private_redis.url, prefix="r", health_seconds=0.5)
    other = RedisBroker(private_redis.url, prefix="r", health_seconds=0.5)  # another worker
    try:
        session = open_session(other)
        publish(broker, 1)
        assert len(receive_events(session, 1)) == 1
        private_redis.client().client_pause(3000)  # Redis hangs: the publish times out
        with pytest.raises(BrokerUnavailable):
            broker.publish(["feed:u1"], Event("new_post", {"lost": True}))
        gevent.sleep(3.2)
        later = _publish_when_up(broker, 1)
        messages = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(m.event_id == later[0] for m in messages):
            messages.extend(session.receive(0.2))
        assert [m.type for m in messages] == ["resync_required", "new_post"]
    finally:
        broker.close()
        other.close()


def test_an_unreachable_redis_fails_fast_with_broker_unavailable():
    broker = RedisBroker("redis://127.0.0.1:1/0", prefix="none")
    with pytest.raises(BrokerUnavailable):
        broker.publish(["feed:u1"], Event("new_post", {}))
    with pytest.raises(BrokerUnavailable):
        broker.read("feed:u1")
    broker.redis.close()


def _until_resync(session, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in session.receive(0.2):
            yield message
            if message.type == "resync_required":
                return


def _publish_when_up(broker, count, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return publish(broker, count)
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise
            gevent.sleep(0.1)


def test_closing_the_quota_gives_back_streams_still_waiting_for_their_batch(broker):
    # Releases go to Redis in batches a moment later; a worker that exits right after its
    # last stream ended (a reload) must not leave those streams counting until they expire.
    quota = RedisQuota(broker.redis, broker.prefix)
    key = quota.key("u1")
    session = open_session(broker, quota=quota)
    assert broker.redis.zcard(key) == 1
    session.close()
    quota.close()
    assert broker.redis.zcard(key) == 0


def test_closing_the_quota_waits_for_a_release_batch_already_on_its_way(broker):
    # The flake this caught: a reloading worker's last batch was waiting for Redis when the
    # worker closed its quota and exited, and one stream counted for 30 s more.
    quota = RedisQuota(broker.redis, broker.prefix)
    key = quota.key("u1")
    session = open_session(broker, quota=quota)
    session.close()
    broker.redis.execute_command("CLIENT", "PAUSE", 400, "WRITE")  # the batch's ZREM waits
    wait_until(lambda: quota._sending, timeout=2, interval=0.01)
    quota.close()
    assert broker.redis.zcard(key) == 0


def test_whether_a_user_has_an_open_stream_is_one_lookup_in_any_process(broker):
    here = RedisQuota(broker.redis, broker.prefix)
    other = RedisQuota(broker.redis, broker.prefix)  # another worker's count
    try:
        assert not other.has_streams("u1")
        session = open_session(broker, quota=here)
        assert other.has_streams("u1") and not other.has_streams("u2")
        session.close()
        wait_until(lambda: not other.has_streams("u1"), timeout=5)  # released in the next batch
    finally:
        here.close()
        other.close()


def test_a_reset_channel_forgets_its_marks_and_remember_refuses_after_a_mark(broker):
    broker.remember("feed:m", broker.read("feed:m").version, ["alice"])
    broker.publish(["feed:m"], Event("_follows", {"author": "bob"}), "+bob")
    assert broker.read("feed:m").marks == {"alice", "bob"}
    broker._reset("feed:m")  # a publish was lost: the marks may miss its change
    assert broker.read("feed:m").marks is None
    version = broker.read("feed:m").version
    broker.publish(["feed:m"], Event("new_post", {}))  # no mark: remember still takes it…
    broker.remember("feed:m", version, ["carol"])
    assert broker.read("feed:m").marks == {"carol"}
    broker._reset("feed:m")
    version = broker.read("feed:m").version
    broker.publish(["feed:m"], Event("_follows", {"author": "dan"}), "-dan")
    broker.remember("feed:m", version, ["dan"])  # …but not after a mark it may lack
    assert broker.read("feed:m").marks is None


def _held_read(broker):
    """Make the broker's next read answer late: it reads, then waits for the returned event
    to be set (a slow round trip). Returns ``(read_done, release)``."""
    real, done, release = broker.read, GeventEvent(), GeventEvent()

    def held(channel, after=None):
        broker.read = real
        result = real(channel, after)
        done.set()
        release.wait()
        return result

    broker.read = held
    return done, release


def _in_flight(broker, channel, start):
    """Start a shared read of *channel* that has read Redis and not yet answered; return it
    with the event that lets it answer."""
    done, release = _held_read(broker)
    first = gevent.spawn(broker.read_shared, channel, start)
    assert done.wait(5), "the held read never ran"
    return first, release


def test_a_read_in_flight_is_shared_only_with_callers_it_can_serve(broker):
    channel = "feed:shared"
    start = broker.read(channel).head  # warm: publishes reach it
    waiting = []
    try:
        # Shared: nothing happened since the read in flight began.
        first, release = _in_flight(broker, channel, start)
        waiting.append(release)
        joined = gevent.spawn(broker.read_shared, channel, start)
        gevent.sleep(0.05)
        release.set()
        assert joined.get(5) is first.get(5)

        # Not shared with callers that need a head the read began before (here a checkpoint's
        # head, read on another connection after an event was published); those two share
        # the next read.
        first, release = _in_flight(broker, channel, start)
        waiting.append(release)
        [event_id] = publish(broker, 1, channel)
        head = broker.read(channel).head
        late = [gevent.spawn(broker.read_shared, channel, start, covering=head)
                for _ in range(2)]
        gevent.sleep(0.05)
        release.set()
        assert first.get(5).messages == []
        assert [m.event_id for m in late[0].get(5).messages] == [event_id]
        assert late[1].get(5) is late[0].get(5)

        # Nor with a caller that needs a head of another epoch: epochs are random, so the
        # read's cannot say it came after.
        start = head
        first, release = _in_flight(broker, channel, start)
        waiting.append(release)
        broker.restart(channel)
        head = broker.read(channel).head
        late = gevent.spawn(broker.read_shared, channel, start, covering=head)
        gevent.sleep(0.05)
        release.set()
        assert first.get(5).messages == []
        assert late.get(5).messages is None and late.get(5).head.epoch == head.epoch

        # Nor with a caller that subscribed after a live message of the channel arrived: the
        # process handed that message to the streams it had, not to this one.
        inbox = Inbox(channel)
        broker.subscribe(inbox)
        start = broker.read(channel).head
        first, release = _in_flight(broker, channel, start)
        waiting.append(release)
        [event_id] = publish(broker, 1, channel)
        wait_until(lambda: len(inbox) == 1)
        late = gevent.spawn(broker.read_shared, channel, start)
        gevent.sleep(0.05)
        release.set()
        assert first.get(5).messages == []
        assert [m.event_id for m in late.get(5).messages] == [event_id]
        broker.unsubscribe(inbox)
    finally:
        for release in waiting:
            release.set()


def test_an_author_index_lost_or_expired_restarts_and_never_claims_what_it_lacks(broker):
    def post(author, n):
        event = Event("new_post", {"n": n}, author=author)
        return Position.parse(broker.publish(["large"], event)[0])

    broker.read("large")
    start = post("alice", 1)
    post("alice", 2)
    index = f"{broker.prefix}:{{large}}:i"
    assert broker.redis.pttl(index) > 0 and broker.redis.pttl(f"{index[:-2]}:a:alice") > 0
    broker.redis.delete(index)  # as when the large-author channel was quiet for a window
    assert broker.read_authors("large", {"alice": start}).messages is None
    restarted = post("bob", 3)  # the index starts again after the seq before this one
    post("alice", 4)
    assert broker.read_authors("large", {"alice": start}).messages is None
    replay = broker.read_authors("large", {"alice": Position(start.epoch, restarted.seq - 1)})
    assert [m.seq for m in replay.messages] == [restarted.seq + 1]

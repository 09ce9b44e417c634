"""A feed stream that reads the large-author channel: catch-up after a follow, gaps only the
process's router can see, and a cursor that keeps up with the channel. Both brokers."""
import time
from types import SimpleNamespace

import orjson
import pytest

from app.auth.signout import StreamsBySession
from app.events.channels import LARGE
from app.events.schema import FOLLOWS_CHANGED, RESYNC_REQUIRED, Event
from app.events.wire import Cursor, Position
from app.stream_quota import MemoryQuota
from app.transports.session import StreamSession
from tests.integration.test_broker import broker_factory  # noqa: F401 - the fixture
from tests.support.waits import wait_until

SETTINGS = {"STREAM_PING_SECONDS": 5, "STREAMS_PER_USER": 10, "STREAM_QUEUE_MAX_EVENTS": 100,
            "STREAM_QUEUE_MAX_BYTES": 1 << 20, "STREAM_MAX_LAG_SECONDS": 10}


@pytest.fixture
def broker(broker_factory):  # noqa: F811
    return broker_factory(history_max_events=50)


def open_feed(broker, user="erin", authors=(), last_event_id=None, lookups=None):
    """Open a feed stream whose reader follows *authors* (as the database would say)."""
    who = SimpleNamespace(user_id=user, sid=f"s-{user}", expires_at=time.time() + 3600)

    def load_authors(user_id):
        assert user_id == user
        if lookups is not None:
            lookups.append(user)
        return list(authors)

    session = StreamSession(broker, f"feed:{user}", who, "sse", SETTINGS, MemoryQuota(),
                            StreamsBySession(broker), load_authors=load_authors)
    return session, session.open(last_event_id)


def post_by(broker, author, n):
    broker.read(LARGE)  # warm, as any stream reading it keeps it
    return broker.publish([LARGE], Event("new_post", {"n": n}, author=author))[0]


def follows_changed(broker, user, author, following, since=None):
    payload = {"author": author, "following": following}
    if since is not None:
        payload["since"] = since.event_id
    broker.publish([f"feed:{user}"], Event(FOLLOWS_CHANGED, payload),
                   ("+" if following else "-") + author)


def numbers(messages):
    return [orjson.loads(m.data)["n"] for m in messages if m.type == "new_post"]


def receive(session, count, timeout=5):
    got = []
    deadline = time.monotonic() + timeout
    while len(numbers(got)) < count and time.monotonic() < deadline:
        got.extend(session.receive(0.1))
    return got


def test_a_follow_entry_catches_up_on_what_the_author_posted_before_the_stream_applied_it(
        broker):
    session, initial = open_feed(broker)
    assert initial == []
    since = broker.read(LARGE).head
    post_by(broker, "alice", 1)  # after the follow committed, before the stream knows of it
    follows_changed(broker, "erin", "alice", True, since)
    post_by(broker, "alice", 2)
    got = receive(session, 2)
    assert numbers(got) == [1, 2]
    assert all(m.event_id.count(".") == 1 for m in got)
    assert all(orjson.loads(m.data)["id"] == m.event_id for m in got)
    assert FOLLOWS_CHANGED not in [m.type for m in got]  # applied, never sent
    follows_changed(broker, "erin", "alice", False)
    post_by(broker, "alice", 3)
    broker.publish(["feed:erin"], Event("new_post", {"n": 4}))
    assert numbers(receive(session, 1)) == [4]
    session.close()


def test_a_gap_only_the_router_sees_is_filled_from_history(broker):
    session, _ = open_feed(broker, authors=("alice",))
    post_by(broker, "alice", 1)
    assert numbers(receive(session, 1)) == [1]
    router = broker.large
    wait_until(lambda: router.position is not None and router.position.seq == 1)
    broker.hub.remove(router)  # the process misses the next event of the channel…
    post_by(broker, "zed", 2)
    post_by(broker, "alice", 3)
    time.sleep(0.3)
    broker.hub.add(router)  # …and sees the one after: a jump in the one sequence
    post_by(broker, "alice", 4)
    got = receive(session, 2)
    assert numbers(got) == [3, 4] and RESYNC_REQUIRED not in [m.type for m in got]
    session.close()


def test_a_cursor_keeps_up_with_events_of_authors_not_followed(broker):
    session, _ = open_feed(broker, authors=("alice",))
    for n in range(5):
        last = post_by(broker, "zed", n)
    wait_until(lambda: broker.large.position is not None
               and broker.large.position.event_id == last)
    assert session.receive(0.05) == []
    assert Cursor.parse(session.cursor).large.event_id == last
    session.close()
    # A resume from there gets what alice posts next, and nothing of zed's.
    post_by(broker, "zed", 5)
    post_by(broker, "alice", 6)
    resumed, initial = open_feed(broker, authors=("alice",), last_event_id=session.cursor)
    assert numbers(initial) == [6]
    resumed.close()


def test_a_plain_id_resumes_a_reader_who_followed_a_large_author_meanwhile(broker):
    session, _ = open_feed(broker)
    session.close()
    plain = session.cursor
    assert "." not in plain
    follows_changed(broker, "erin", "alice", True, broker.read(LARGE).head)
    post_by(broker, "alice", 1)
    resumed, initial = open_feed(broker, authors=("alice",), last_event_id=plain)
    assert numbers(initial) == [1]
    resumed.close()


def test_after_a_follow_entry_the_cursor_resumes_the_large_author_too(broker):
    session, _ = open_feed(broker)
    follows_changed(broker, "erin", "alice", True, broker.read(LARGE).head)
    wait_until(lambda: session.receive(0.05) == [] and session.authors)
    session.close()
    cursor = session.cursor
    post_by(broker, "alice", 1)
    resumed, initial = open_feed(broker, authors=("alice",), last_event_id=cursor)
    assert numbers(initial) == [1]
    resumed.close()


def test_whom_a_feed_follows_is_looked_up_once_then_read_with_the_feed(broker):
    lookups = []
    first, _ = open_feed(broker, authors=("alice",), lookups=lookups)
    assert lookups == ["erin"] and first.authors == {"alice"}
    first.close()
    follows_changed(broker, "erin", "bob", True, broker.read(LARGE).head)
    # A resume, a resync and a fresh start all read the feed's marks: no lookup.
    for last_event_id in (first.cursor, "0000-5", None):
        session, _ = open_feed(broker, authors=("stale",), last_event_id=last_event_id,
                               lookups=lookups)
        assert session.authors == {"alice", "bob"}, last_event_id
        session.close()
    follows_changed(broker, "erin", "alice", False)
    session, _ = open_feed(broker, authors=("stale",), lookups=lookups)
    assert session.authors == {"bob"} and lookups == ["erin"]
    session.close()


def test_a_resume_after_a_follow_sends_the_new_authors_events_once(broker):
    first, _ = open_feed(broker, authors=("zed",))
    first.close()
    follows_changed(broker, "erin", "alice", True, broker.read(LARGE).head)
    post_by(broker, "alice", 1)
    post_by(broker, "zed", 2)
    resumed, initial = open_feed(broker, authors=("zed", "alice"), last_event_id=first.cursor)
    assert numbers(initial) == [1, 2]
    assert len({m.event_id for m in initial}) == 2
    resumed.close()


def test_a_second_follow_entry_for_an_author_already_read_repeats_nothing(broker):
    session, _ = open_feed(broker, authors=("alice",))
    since = broker.read(LARGE).head
    post_by(broker, "alice", 1)
    assert numbers(receive(session, 1)) == [1]
    follows_changed(broker, "erin", "alice", True, since)  # announced twice (a promotion too)
    post_by(broker, "alice", 2)
    got = receive(session, 1)
    assert numbers(got) == [2] and RESYNC_REQUIRED not in [m.type for m in got]
    session.close()


def test_an_event_behind_the_streams_place_when_it_learns_of_a_follow_gives_resync(broker):
    session, _ = open_feed(broker, authors=("zed",))
    since = broker.read(LARGE).head
    post_by(broker, "alice", 1)  # after the follow, before the stream knows of it
    post_by(broker, "zed", 2)
    assert numbers(receive(session, 1)) == [2]  # the stream's place is past alice's post now
    follows_changed(broker, "erin", "alice", True, since)
    got = []
    deadline = time.monotonic() + 5
    while RESYNC_REQUIRED not in [m.type for m in got] and time.monotonic() < deadline:
        got.extend(session.receive(0.1))
    assert RESYNC_REQUIRED in [m.type for m in got]  # not a silent gap: the client refetches
    post_by(broker, "alice", 3)
    assert numbers(receive(session, 1)) == [3]
    session.close()


def test_a_feed_resync_reloads_whom_the_reader_follows(broker):
    session, _ = open_feed(broker)  # follows nobody large; the feed now knows it
    router = broker.large
    broker.hub.remove(session.inbox)  # the stream misses everything below…
    for n in range(60):  # …more than the feed's history holds (50)
        broker.publish(["feed:erin"], Event("new_post", {"n": 100 + n}))
    follows_changed(broker, "erin", "alice", True, broker.read(LARGE).head)
    broker.hub.add(session.inbox)
    broker.publish(["feed:erin"], Event("new_post", {"n": 200}))
    got = receive(session, 1)
    assert RESYNC_REQUIRED in [m.type for m in got] and numbers(got)[-1] == 200
    assert session.authors == {"alice"} and session.inbox in router.members
    post_by(broker, "alice", 1)
    assert numbers(receive(session, 1)) == [1]
    session.close()


def test_a_feed_that_starts_over_looks_up_whom_its_reader_follows_and_goes_on(broker):
    lookups, database = [], ["alice", "bob"]
    session, _ = open_feed(broker, authors=database, lookups=lookups)
    database.remove("bob")
    follows_changed(broker, "erin", "bob", False)  # lost with what the restart drops
    broker.restart("feed:erin")
    got = []
    deadline = time.monotonic() + 5
    while RESYNC_REQUIRED not in [m.type for m in got] and time.monotonic() < deadline:
        got.extend(session.receive(0.1))
    assert RESYNC_REQUIRED in [m.type for m in got]
    assert lookups == ["erin", "erin"]  # at the open, and after the restart
    post_by(broker, "bob", 1)
    post_by(broker, "alice", 2)
    assert numbers(receive(session, 1)) == [2]  # the database says: alice only
    session.close()
    again, _ = open_feed(broker, authors=("carol",), lookups=lookups)
    assert again.authors == {"alice"} and lookups == ["erin", "erin"]  # remembered
    again.close()


def test_a_resume_past_an_event_of_an_author_followed_meanwhile_gives_resync(broker):
    session, _ = open_feed(broker, authors=("alice",))
    since = broker.read(LARGE).head
    post_by(broker, "bob", 1)  # bob's, once erin's follow of bob committed…
    post_by(broker, "alice", 2)
    assert numbers(receive(session, 1)) == [2]  # …and the client's place is past it
    session.close()
    follows_changed(broker, "erin", "bob", True, since)  # reaches no stream: the client is away
    resumed, initial = open_feed(broker, authors=("alice", "bob"), last_event_id=session.cursor)
    assert [m.type for m in initial] == [RESYNC_REQUIRED]
    post_by(broker, "bob", 3)
    assert numbers(receive(resumed, 1)) == [3]
    resumed.close()


def test_follows_whose_places_are_in_two_epochs_of_the_channel_give_resync(broker):
    session, _ = open_feed(broker)
    session.close()
    follows_changed(broker, "erin", "alice", True, broker.read(LARGE).head)
    follows_changed(broker, "erin", "bob", True, Position("0ld0", 7))
    _, initial = open_feed(broker, authors=("alice", "bob"), last_event_id=session.cursor)
    assert [m.type for m in initial] == [RESYNC_REQUIRED]


def test_a_lookup_begun_before_a_restart_is_not_stored(broker):
    broker.read("feed:erin")
    version = broker.read("feed:erin").version
    broker.restart("feed:erin")  # e.g. a follow entry that could not be published
    broker.remember("feed:erin", version, ["alice"])
    assert broker.read("feed:erin").marks is None


def test_events_that_follow_a_checkpoint_before_the_stream_reads_it_skip_nothing(broker):
    # The process's first event of the channel is a checkpoint (the router cannot place it);
    # the next one is handed to the stream as live. When both arrive before the stream's
    # greenlet runs, the live one must not carry the stream's place past the first.
    session, _ = open_feed(broker, authors=("alice",))
    post_by(broker, "alice", 1)
    second = post_by(broker, "alice", 2)
    router = broker.large
    wait_until(lambda: router.position is not None and router.position.event_id == second)
    # The case itself: the first event came as a checkpoint, the second queued as live.
    assert session.inbox.large_checkpoint is not None and len(session.inbox) == 1
    assert numbers(receive(session, 2)) == [1, 2]
    session.close()

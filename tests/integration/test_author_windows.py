"""Each author's own window on the large-author channel: the channel keeps the last
``history_max_events`` events of every author beside its shared history, so a reader of a quiet
large author resumes exactly however busy the others. Both brokers."""
import orjson
import pytest

from app.events.channels import LARGE
from app.events.schema import RESYNC_REQUIRED, Event
from app.events.wire import Cursor, Position
from tests.integration.test_broker import broker_factory  # noqa: F401 - the fixture
from tests.integration.test_large_author_streams import numbers, open_feed, receive

WINDOW = 10


@pytest.fixture
def broker(broker_factory):  # noqa: F811
    return broker_factory(history_max_events=WINDOW)


def post_by(broker, author, n):
    broker.read(LARGE)  # warm, as any stream reading it keeps it
    return Position.parse(broker.publish([LARGE], Event("new_post", {"n": n}, author=author))[0])


def ns(replay):
    return [orjson.loads(m.data)["n"] for m in replay.messages]


def test_a_position_reads_its_authors_events_in_the_channels_order_and_no_others(broker):
    start = post_by(broker, "alice", 0)
    for n in range(1, 7):
        post_by(broker, ("alice", "bob", "zed")[n % 3], n)
    replay = broker.read_authors(LARGE, {"alice": start, "bob": start})
    assert ns(replay) == [1, 3, 4, 6]  # bob, alice, bob, alice
    assert all(m.author in ("alice", "bob") for m in replay.messages)
    assert replay.head == broker.read(LARGE).head


def test_each_author_is_read_after_its_own_position(broker):
    start = post_by(broker, "alice", 0)
    later = post_by(broker, "bob", 1)
    post_by(broker, "alice", 2)
    post_by(broker, "bob", 3)
    assert ns(broker.read_authors(LARGE, {"alice": start, "bob": later})) == [2, 3]
    assert ns(broker.read_authors(LARGE, {"alice": later})) == [2]
    assert broker.read_authors(LARGE, {}).messages == []


def test_a_quiet_author_keeps_its_window_while_the_channel_outgrows_its_own(broker):
    start = post_by(broker, "alice", 0)
    post_by(broker, "alice", 1)
    for n in range(2, 2 + 3 * WINDOW):
        post_by(broker, "zed", n)
    post_by(broker, "alice", 99)
    assert broker.read(LARGE, start).messages is None  # the shared history no longer holds it
    assert ns(broker.read_authors(LARGE, {"alice": start})) == [1, 99]


def test_an_author_past_its_own_window_gives_resync_and_one_inside_does_not(broker):
    start = post_by(broker, "alice", 0)
    for n in range(1, WINDOW + 1):
        post_by(broker, "alice", n)
    inside = Position(start.epoch, start.seq + 1)
    assert ns(broker.read_authors(LARGE, {"alice": inside})) == list(range(2, WINDOW + 1))
    assert ns(broker.read_authors(LARGE, {"alice": start})) == list(range(1, WINDOW + 1))
    post_by(broker, "alice", WINDOW + 1)  # the window moves past what *start* missed
    assert broker.read_authors(LARGE, {"alice": start}).messages is None
    assert broker.read_authors(LARGE, {"alice": start, "bob": start}).messages is None


def test_a_position_of_another_epoch_or_past_the_head_gives_resync(broker):
    start = post_by(broker, "alice", 0)
    post_by(broker, "alice", 1)
    assert broker.read_authors(LARGE, {"alice": Position("other", start.seq)}).messages is None
    assert broker.read_authors(LARGE, {"alice": Position(start.epoch, 99)}).messages is None


def test_the_index_starts_over_with_the_channels_epoch(broker):
    for n in range(5):
        post_by(broker, "alice", n)
    broker.restart(LARGE)
    start = post_by(broker, "alice", 5)  # seq 1 again, under the former epoch's entries
    post_by(broker, "alice", 6)
    assert start.seq == 1
    assert ns(broker.read_authors(LARGE, {"alice": start})) == [6]
    assert ns(broker.read_authors(LARGE, {"alice": Position(start.epoch, 0)})) == [5, 6]


def test_a_reader_of_a_quiet_large_author_resumes_exactly_after_a_storm_of_others(broker):
    session, _ = open_feed(broker, authors=("alice",))
    post_by(broker, "alice", 1)
    assert numbers(receive(session, 1)) == [1]
    session.close()
    cursor = session.cursor
    for n in range(2, 2 + 3 * WINDOW):
        post_by(broker, "zed", n)
    post_by(broker, "alice", 100)
    post_by(broker, "zed", 101)
    post_by(broker, "alice", 102)
    resumed, initial = open_feed(broker, authors=("alice",), last_event_id=cursor)
    assert RESYNC_REQUIRED not in [m.type for m in initial]
    assert numbers(initial) == [100, 102]
    assert Cursor.parse(initial[-1].event_id).large == Position.parse(
        broker.read(LARGE).head.event_id)
    resumed.close()


def test_a_reader_whose_author_outgrew_its_window_resyncs(broker):
    session, _ = open_feed(broker, authors=("alice",))
    post_by(broker, "alice", 1)
    assert numbers(receive(session, 1)) == [1]
    session.close()
    for n in range(2, WINDOW + 3):
        post_by(broker, "alice", n)
    resumed, initial = open_feed(broker, authors=("alice",), last_event_id=session.cursor)
    assert [m.type for m in initial] == [RESYNC_REQUIRED]
    resumed.close()


def test_a_resume_over_more_than_a_windows_worth_of_events_in_all_gives_resync(broker):
    start = post_by(broker, "alice", 0)
    for n in range(1, WINDOW + 2):  # each author inside its own window, more than one in all
        post_by(broker, ("alice", "bob")[n % 2], n)
    everyone = {"alice": start, "bob": start}
    assert broker.read_authors(LARGE, everyone).messages is None
    assert len(broker.read_authors(LARGE, {"alice": start}).messages) == (WINDOW + 1) // 2

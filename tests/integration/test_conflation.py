"""A post's counters reach feeds at most once per window and always end on the latest value,
in one process and across processes sharing Redis."""
import time

import gevent
import pytest
import redis
from flask import Flask

from app.redis_client import connect
from app.services.conflation import FeedCounts, MemoryLeases, RedisLeases
from tests.support.servers import free_port

WINDOW = 0.2


class Counter:
    """The state a send reads (like the counts in the database), and what each send saw."""

    def __init__(self):
        self.value = 0
        self.sent = []  # (monotonic time, value read)

    def send(self, post_id):
        self.sent.append((time.monotonic(), self.value))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def workers(request):
    """Two :class:`FeedCounts` as two workers would have: on Redis they share their leases;
    in-process there is one process, hence one."""
    app = Flask(__name__)
    if request.param == "memory":
        counts = FeedCounts(app, MemoryLeases(), WINDOW)
        yield [counts, counts]
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = request.getfixturevalue("redis_prefix")
    yield [FeedCounts(app, RedisLeases(client, prefix, lease_seconds=1), WINDOW)
           for _ in range(2)]
    client.delete(*client.keys(f"{prefix}:*") or ["-"])
    client.close()


def _change(workers, counter, n):
    counter.value += 1
    workers[n % len(workers)].changed("reactions", "p1", counter.send)


def test_an_isolated_change_is_sent_at_once_and_once(workers):
    counter = Counter()
    _change(workers, counter, 0)
    assert [value for _, value in counter.sent] == [1]  # from the request itself
    gevent.sleep(WINDOW * 3)
    assert [value for _, value in counter.sent] == [1]


def test_a_storm_is_sent_once_per_window_and_ends_on_the_last_value(workers):
    counter = Counter()
    started = time.monotonic()
    for n in range(100):
        _change(workers, counter, n)
        gevent.sleep(0.01)
    took = time.monotonic() - started
    gevent.sleep(WINDOW * 3)
    values = [value for _, value in counter.sent]
    assert values[0] == 1 and values[-1] == 100, values
    assert len(values) <= took / WINDOW + 2, (len(values), took)
    gaps = [b - a for (a, _), (b, _) in zip(counter.sent, counter.sent[1:])]
    assert min(gaps) >= WINDOW * 0.9, gaps


def test_after_a_quiet_window_the_next_change_leads_again(workers):
    counter = Counter()
    _change(workers, counter, 0)
    gevent.sleep(WINDOW * 3)  # the window closed with nothing pending: the lease is given back
    _change(workers, counter, 1)
    assert [value for _, value in counter.sent] == [1, 2]


def test_a_window_of_zero_sends_every_change():
    counter = Counter()
    counts = FeedCounts(Flask(__name__), MemoryLeases(), 0)
    for _ in range(5):
        counter.value += 1
        counts.changed("comments", "p1", counter.send)
    assert [value for _, value in counter.sent] == [1, 2, 3, 4, 5]


@pytest.mark.redis
def test_a_killed_holders_lease_expires_and_a_later_change_sends(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    leases = RedisLeases(client, redis_prefix, lease_seconds=0.5)
    assert leases.claim("reactions:p1", "dead-worker")  # its trailing greenlet never runs
    counter = Counter()
    counts = FeedCounts(Flask(__name__), leases, WINDOW)
    counts.changed("reactions", "p1", counter.send)
    assert counter.sent == []  # marked pending: the holder would send it
    gevent.sleep(0.6)
    counter.value = 7
    counts.changed("reactions", "p1", counter.send)
    assert [value for _, value in counter.sent] == [7]
    client.close()


def test_a_lease_store_that_fails_sends_every_change():
    away = connect(f"redis://127.0.0.1:{free_port()}/0", cluster=False)  # nothing listens there
    counter = Counter()
    counts = FeedCounts(Flask(__name__), RedisLeases(away, "t", lease_seconds=1), WINDOW)
    for _ in range(3):
        counter.value += 1
        counts.changed("reactions", "p1", counter.send)
    assert [value for _, value in counter.sent] == [1, 2, 3]


def test_a_stopping_worker_sends_what_is_pending_and_gives_the_lease_back(workers):
    counter = Counter()
    for n in range(3):
        _change(workers, counter, n)  # the first worker leads; the others are pending
    workers[0].close()
    assert [value for _, value in counter.sent] == [1, 3]
    gevent.sleep(WINDOW * 2)
    assert [value for _, value in counter.sent] == [1, 3]
    _change(workers, counter, 1)  # the lease is free: the next change leads at once
    assert [value for _, value in counter.sent] == [1, 3, 4]

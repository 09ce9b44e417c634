"""Steady mixed load, then churn with resume, through both workers of one server.

The server runs on PostgreSQL reached through a counting TCP proxy, so the churn test can show
that resuming a stream sends no query at all: the proxy parses the PostgreSQL frontend protocol
and counts every statement (``Q`` simple queries and ``E`` executes) any worker sends.
"""
import random
import time
from urllib.parse import urlsplit, urlunsplit

import gevent
import pytest

from tests.chaos.harness import record, scaled, seconds
from tests.chaos.world import LARGE_AUTHOR_FOLLOWERS, FeedWorld, by_transport
from tests.support.accounting import split_id
from tests.support.load import start_all, stop_all, wait_established
from tests.support.procs import clients_by_worker
from tests.support.tcpproxy import PostgresMessages, TCPProxy

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

RATE = 20  # events (posts) a second, in both tiers
HISTORY = 12  # events held per channel: long absences (~12 s) outlive it


@pytest.fixture(scope="module")
def pg_totals():
    return {}


@pytest.fixture(scope="module")
def server(deployment, redis_url, pg_totals):
    url = deployment.database("postgres")
    proxy = TCPProxy(5432, parser=lambda: PostgresMessages(pg_totals)).start()
    parts = urlsplit(url)
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}",
                                        query="sslmode=disable"))
    # The outbox relay's look for rows a stopped worker left (one SELECT per worker every
    # OUTBOX_RELAY_SECONDS) is a timer, not part of any resume: once at start and then hourly
    # here, or it lands in the window where the churn test counts the SQL of resumes.
    [server] = deployment.start(workers=2, redis_url=redis_url, database_url=proxied,
                                STREAMS_PER_USER=60, STREAM_PING_SECONDS=5,
                                HISTORY_MAX_EVENTS=HISTORY, LONGPOLL_MAX_SECONDS=55,
                                LARGE_AUTHOR_FOLLOWERS=LARGE_AUTHOR_FOLLOWERS,
                                OUTBOX_RELAY_SECONDS=3600)
    yield server
    proxy.stop()


@pytest.fixture(scope="module")
def world(server):
    return FeedWorld(server, owners=50, large=2)  # two of them large authors


def spread_over_workers(server, clients):
    """Return ``{worker pid: number of clients}`` (long-poll clients move between requests)."""
    return {pid: len(held) for pid, held in clients_by_worker(server, clients).items()}


@pytest.mark.timeout(600)
def test_steady_mixed_load_has_no_gap_reorder_or_duplicate(server, world):
    total, duration = scaled(1000), seconds(120)
    clients = world.clients(total)
    start_all(clients, spread=2.0)
    assert not wait_established(clients, timeout=60), "every client connects"
    workers = spread_over_workers(server, clients)
    assert set(workers) == set(server.worker_pids()), f"streams on both workers: {workers}"
    publisher = world.start_publisher(RATE, duration)
    publisher.join()
    missing = world.wait_delivered(clients, timeout=20)
    stop_all(clients)
    summary = by_transport(clients)
    # Readers of the two large owners get compound ids: the large-author path is under load too.
    compound = sum(1 for c in clients for event_id in c.stats.ids if "." in event_id)
    figures = {"clients": total, "seconds": duration, "posts/s": round(publisher.achieved_rate, 1),
               "events delivered": summary["all"]["events"],
               "of them by the large-author channel's readers": compound,
               "gaps": summary["all"]["gaps"],
               "reorders": summary["all"]["reorders"], "duplicates": summary["all"]["duplicates"],
               "p50 ms": summary["all"]["p50_ms"], "p99 ms": summary["all"]["p99_ms"],
               "max ms": summary["all"]["max_ms"],
               **{f"{k} p99 ms": v["p99_ms"] for k, v in summary.items() if k != "all"},
               "streams per worker": "/".join(str(n) for n in sorted(workers.values()))}
    ok = (not missing and summary["all"]["gaps"] == 0 and summary["all"]["reorders"] == 0
          and summary["all"]["duplicates"] == 0 and summary["all"]["p99_ms"] <= 500
          and publisher.statuses == {201: len(publisher.results)})
    record("steady load", "test_steady_mixed_load_has_no_gap_reorder_or_duplicate",
           "steady mixed load: 60% SSE, 30% WS, 10% long-poll over 50 feeds (2 of their owners "
           "large authors), 2 workers",
           figures, "0 gaps, 0 reorders, 0 duplicates, p99 ≤ 500 ms", ok)
    assert publisher.statuses == {201: len(publisher.results)}, publisher.statuses
    assert not missing, f"clients missing events: {dict(list(missing.items())[:10])}"
    assert summary["all"]["gaps"] == 0 and summary["all"]["reorders"] == 0
    assert summary["all"]["duplicates"] == 0
    assert summary["all"]["p99_ms"] <= 500, summary
    assert compound, "no reader of a large author got an event"


def channel_head(redis_client, server, user_id):
    """Return ``(epoch, seq)`` of a user's feed channel, read from Redis as the broker keeps it."""
    meta = redis_client.hgetall(f"{server.env['REDIS_PREFIX']}:{{feed:{user_id}}}:m")
    return (meta[b"e"].decode(), int(meta[b"s"])) if meta else (None, 0)


def large_missed(redis_client, server, world, owner, place):
    """Return how many events of the large authors *owner* follows came after *place*, the
    large-author part of a client's last id, counted in the channel's index of each author's
    events (each has a window of its own), or None when the channel's epoch changed."""
    tag = f"{server.env['REDIS_PREFIX']}:{{large}}"
    epoch = redis_client.hget(f"{tag}:m", "e")
    if epoch is None or epoch.decode() != place[0]:
        return None
    return max([len(redis_client.xrange(f"{tag}:a:{world.owners[author].id}",
                                        min=f"{place[1] + 1}-0"))
                for author in world.large if owner in world.followers[author]], default=0)


class Churner:
    """Drop a client every 5-15 s and resume it after a short or a long absence.

    A long absence outlasts the channel's history, so its resume must get resync_required;
    a short one must replay exactly. Each resume is classified by the channel's head read
    from Redis just before the reconnect, and judged by what the new connection brings.
    """

    def __init__(self, world, redis_client, server, long_share=0.1, feed_rate=1.2):
        self.world = world
        self.redis = redis_client
        self.server = server
        self.long_share = long_share
        self.long_away = (HISTORY + 4) / feed_rate
        self.resumes = []  # dicts: missed, resynced, established seconds, refused statuses
        self.refetched = 0

    def refetch(self, client):
        if self.world.refetch(client):
            self.refetched += 1

    def run(self, client, until):
        while True:
            gevent.sleep(min(random.uniform(5, 15), max(0.0, until - time.monotonic())))
            if time.monotonic() >= until:
                break
            client.stop(reset=random.random() < 0.3)
            long = random.random() < self.long_share
            gevent.sleep(self.long_away + random.uniform(0, 2) if long else random.uniform(0.05, 1.0))
            epoch, head = channel_head(self.redis, self.server, self.world.owners[client.owner].id)
            # The feed's own part of the id, and, for a reader of a large author, the most
            # events one of its large authors posted after the id's large-author part.
            own, large = split_id(client.last_id) if client.last_id else ((None, 0), None)
            missed = head - own[1] if epoch == own[0] else None
            if large is not None and missed is not None:
                by_author = large_missed(self.redis, self.server, self.world, client.owner, large)
                missed = None if by_author is None else max(missed, by_author)
            before = client.stats.resyncs
            client.start(resume=True)
            took = client.wait_established(timeout=15)
            gevent.sleep(0.3)  # the replay or resync_required follows connection_established
            resynced = client.stats.resyncs > before
            self.resumes.append({"missed": missed, "resynced": resynced, "seconds": took,
                                 "refused": list(client.refusals)})
            self.refetch(client)

    def judge(self):
        """Return ``(exact inside, resync outside, wrong)`` counts of the resumes."""
        inside = outside = 0
        wrong = []
        for resume in self.resumes:
            missed = resume["missed"]
            if missed is None:
                wrong.append(resume)  # the epoch changed under a client: not part of this test
            elif missed <= HISTORY - 3:
                inside += 1
                if resume["resynced"]:
                    wrong.append(resume)
            elif missed > HISTORY:
                outside += 1
                if not resume["resynced"]:
                    wrong.append(resume)
        return inside, outside, wrong


@pytest.mark.timeout(900)
def test_churn_resumes_exactly_inside_the_window_and_resyncs_outside(server, world, redis_url,
                                                                    pg_totals):
    import redis

    redis_client = redis.Redis.from_url(redis_url)
    total, duration = scaled(1000), seconds(120)
    clients = world.clients(total)
    start_all(clients, spread=2.0)
    assert not wait_established(clients, timeout=60)
    churner = Churner(world, redis_client, server)
    publisher = world.start_publisher(RATE, duration)
    until = time.monotonic() + duration
    churn = [gevent.spawn(churner.run, client, until) for client in clients]
    publisher.join()
    gevent.joinall(churn, timeout=60)
    for client in clients:
        if not client.up:
            client.start(resume=True)
    assert not wait_established(clients, timeout=30)
    gevent.sleep(0.5)
    for client in clients:
        churner.refetch(client)
    missing = world.wait_delivered(clients, timeout=20)
    expected = world.expected()
    wanted = sum(len(expected[c.owner]) for c in clients)
    got = sum(len(set(expected[c.owner]) & set(c.post_ids)) for c in clients)
    delivered = round(100.0 * got / max(wanted, 1), 3)
    summary = by_transport(clients)["all"]
    inside, outside, wrong = churner.judge()
    slow = [r for r in churner.resumes if r["seconds"] is None or r["seconds"] > 5]

    # The resume path without SQL: every client away while events are published, then all back.
    stop_all(clients)
    burst = world.start_publisher(RATE, 3)
    burst.join()
    gevent.sleep(1.0)  # what the writes sent has been counted
    before = dict(pg_totals)
    start_all(clients, resume=True)
    assert not wait_established(clients, timeout=60)
    gevent.sleep(1.0)
    # Counted before the REST refetches that clients told to resync make (those are SQL).
    queries = PostgresMessages.queries(pg_totals) - PostgresMessages.queries(before)
    messages = sum(pg_totals.values()) - sum(before.values())
    for client in clients:
        churner.refetch(client)
    world.publisher = burst
    missing_after = world.wait_delivered(clients, timeout=20)
    stop_all(clients)

    figures = {"clients": total, "seconds": duration, "resumes": len(churner.resumes),
               "inside window, exact": inside, "outside window, resync": outside,
               "wrong outcome": len(wrong), "REST refetches": churner.refetched,
               "delivered after dedupe %": delivered,
               "gaps": summary["gaps"], "duplicates (deduped)": summary["duplicates"],
               "reorders": summary["reorders"], "silent epoch changes": summary["silent_epoch_changes"],
               "resumes > 5 s": len(slow),
               "SQL statements on a resume of every client": queries,
               "PostgreSQL messages": messages}
    ok = (not missing and not wrong and summary["gaps"] == 0 and summary["reorders"] == 0
          and queries == 0 and messages == 0 and not missing_after and outside > 0)
    record("churn and resume", "test_churn_resumes_exactly_inside_the_window_and_resyncs_outside",
           "churn: every client dropped every 5-15 s and resumed (10% after outliving a "
           f"{HISTORY}-event history); then all resume at once, SQL counted by a PostgreSQL "
           "protocol proxy", figures,
           "100% after dedupe; exact inside the window, resync outside; 0 SQL on resume", ok)
    assert not missing, dict(list(missing.items())[:10])
    assert not wrong, wrong[:10]
    assert summary["gaps"] == 0 and summary["reorders"] == 0 and summary["silent_epoch_changes"] == 0
    assert outside > 0, "some resumes outlived the history"
    assert not missing_after, [(c.label, missing_after[c.label], c.stats.types, c.refusals,
                                c.end_reason, c.connections) for c in clients
                               if c.label in missing_after][:5]
    assert queries == 0 and messages == 0, pg_totals

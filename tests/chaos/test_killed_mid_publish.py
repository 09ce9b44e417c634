"""A worker killed with -9 between a write's commit and its publish loses nothing.

The server pauses the publish of any event holding :data:`STALL` (``OUTBOX_FAULT_PAUSE_MARKER``),
so the test knows the worker is inside that window when it kills it: the post is committed
(REST shows it), its event published nowhere. The outbox's relay in the other worker takes
the event over once its lease runs out: a small author's followers' feeds start over (their
streams get ``resync_required`` and the post is in the REST feed they then read), a large
author's event is published once on the large-author channel (their followers get it live).
Clients reconnect as EventSource does, resuming from the last id they saw.
"""
import http.client
import os
import signal
import time

import orjson
import pytest

from tests.chaos.harness import record
from tests.support.clients import SUBSCRIBERS, RestUser
from tests.support.procs import worker_of_peers
from tests.support.waits import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]

STALL = "[stall-before-publish]"
LEASE = 2


@pytest.fixture(scope="module")
def server(deployment, redis_url):
    [server] = deployment.start(
        workers=2, redis_url=redis_url, RATELIMIT_ENABLED="false", LARGE_AUTHOR_FOLLOWERS=4,
        OUTBOX_FAULT_PAUSE_MARKER=STALL, OUTBOX_LEASE_SECONDS=LEASE, OUTBOX_RELAY_SECONDS=0.5,
        APP_ENV="development")  # the fault pause is refused outside development
    return server


class Reader:
    """One feed stream that reconnects with the last id it saw whenever it drops."""

    def __init__(self, server, user, transport):
        self.server, self.user, self.transport = server, user, transport
        self.events, self.drops = [], 0
        self.stream = None
        self.connect()

    def connect(self):
        self.stream = SUBSCRIBERS[self.transport](self.server.url, "feed", self.user.token,
                                                  last_event_id=self.last_id)
        assert self.stream.status in (200, 101), self.stream.status
        self.stream.wait_type("connection_established")

    @property
    def last_id(self):
        ids = [e["id"] for e in self.events + self._current() if "id" in e]
        return ids[-1] if ids else None

    def _current(self):
        return [e for _, e in self.stream.events] if self.stream else []

    def seen(self):
        """Return every object received, over every connection, reconnecting if dropped."""
        if self.stream.ended:
            self.events += self._current()
            self.drops += 1
            self.stream = None
            self.connect()
        return self.events + self._current()

    def told(self, content, since):
        """Return ``(times received live, whether told to resync)`` of what came after the
        first *since* objects."""
        after = self.seen()[since:]
        live = sum(1 for e in after if e.get("type") == "new_post"
                   and e["post"]["content"] == content)
        return live, any(e.get("type") == "resync_required" for e in after)

    def close(self):
        self.stream.close()


def stalled_post(server, author, content):
    """Send the post on a connection of our own; return ``(connection, its local port)``."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=90)
    conn.connect()
    body = orjson.dumps({"content": content})
    conn.putrequest("POST", "/api/posts")
    for name, value in {"Authorization": f"Bearer {author.token}",
                        "Content-Type": "application/json",
                        "Content-Length": str(len(body))}.items():
        conn.putheader(name, value)
    conn.endheaders(body)
    return conn, conn.sock.getsockname()[1]


def committed(author, content):
    posts = author.call("GET", f"/api/users/{author.username}/posts").json()["posts"]
    return any(p["content"] == content for p in posts)


def kill_mid_publish(server, author, content):
    """Post *content*, wait for its commit, kill -9 the worker paused before its publish;
    return the time of the kill."""
    conn, port = stalled_post(server, author, content)
    wait_until(lambda: committed(author, content), timeout=15, interval=0.05)
    pid = worker_of_peers(server.port)[port]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    conn.close()
    return killed


def settle(readers, content, since, timeout):
    """Wait until every reader got *content* live or was told to resync (each is polled, so
    each reconnects as soon as it drops); return ``{reader: (live, resynced)}``."""
    def outcomes():
        return {reader: reader.told(content, since[reader]) for reader in readers}

    try:
        wait_until(lambda: all(live or resynced for live, resynced in outcomes().values()),
                   timeout=timeout, interval=0.1)
    except AssertionError:
        raise AssertionError({r.user.username: [(e.get("type"), e.get("id")) for e in r.seen()]
                              for r in readers}) from None
    time.sleep(1)  # a second copy would come now
    return outcomes()


def check(readers, content, outcomes):
    """Assert nothing is lost or doubled: each reader got it live once, or resynced and finds
    it (once) in the REST feed its client then reads."""
    for reader, (live, resynced) in outcomes.items():
        assert live <= 1, (reader.user.username, content, live)
        if resynced:
            feed = reader.user.call("GET", "/api/feed").json()["posts"]
            assert [p["content"] for p in feed].count(content) == 1, reader.user.username


@pytest.mark.timeout(180)
def test_a_worker_killed_between_commit_and_publish_loses_nothing(server):
    names = iter(range(100))
    user = lambda: RestUser(server.url, f"mid{next(names)}_{os.getpid()}")  # noqa: E731
    alice, dave = user(), user()  # alice small (three followers), dave large (four)
    bob, carol, erin = user(), user(), user()
    for reader in (bob, carol, erin):
        reader.follow(alice)
        reader.follow(dave)
    user().follow(dave)
    readers = [Reader(server, bob, "sse"), Reader(server, carol, "ws"),
               Reader(server, erin, "sse"), Reader(server, alice, "ws")]

    figures, timeout = {"readers": len(readers)}, LEASE + 20
    for label, author, followers in (("small", alice, readers), ("large", dave, readers[:3])):
        content = f"{STALL} by a {label} author"
        # A post that reaches everyone first: each reader's last id is in its feed's epoch
        # now (resync_required has none), so a reconnect resumes exactly.
        before = {reader: len(reader.seen()) for reader in readers}
        alice.post(f"before the {label} author's")
        settle(readers, f"before the {label} author's", before, 10)
        since = {reader: len(reader.seen()) for reader in followers}
        killed = kill_mid_publish(server, author, content)
        outcomes = settle(followers, content, since, timeout)
        figures[f"{label} author: settled after s"] = round(time.monotonic() - killed - 1, 2)
        figures[f"{label} author: live/resynced"] = "/".join(str(sum(
            bool(o[i]) for o in outcomes.values())) for i in (0, 1))
        check(followers, content, outcomes)
        if label == "large":
            # Published again on the large-author channel after the lease: live, to each.
            assert all(live == 1 for live, _ in outcomes.values()), figures
    figures["reconnects"] = sum(r.drops for r in readers)
    record("worker signals", "test_a_worker_killed_between_commit_and_publish_loses_nothing",
           "a worker killed -9 between a post's commit and its publish, small and large author",
           figures, "each follower gets the post live once, or resync_required and then finds "
           "it in the REST feed", True)
    for reader in readers:
        reader.close()

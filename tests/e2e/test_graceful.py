"""Graceful deploys: SIGTERM and SIGHUP end streams cleanly, and clients resume without loss."""
import random
import signal
import time

import gevent
import pytest
import requests

from tests.support.clients import SUBSCRIBERS, RestUser, parse_sse

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def test_sigterm_ends_sse_after_a_final_ping_and_websocket_with_1012(deploy):
    [server] = deploy(workers=2, STREAM_PING_SECONDS=30)
    alice = RestUser(server.url, "alice")
    sse = SUBSCRIBERS["sse"](server.url, "feed", alice.token)
    ws = SUBSCRIBERS["ws"](server.url, "feed", alice.token)
    for subscriber in (sse, ws):
        subscriber.wait_type("connection_established")
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    sse.wait_for(lambda s: s.ended, timeout=5)
    ws.wait_for(lambda s: s.ended, timeout=5)
    assert time.monotonic() - started < 3
    assert [e["type"] for _, e in sse.events][-1] == "ping"
    assert ws.close_code == 1012
    server.process.wait(10)


class ResumingClient:
    """An SSE client that reconnects with Last-Event-ID after random full-jitter backoff."""

    def __init__(self, url, token):
        self.url, self.token = url, token
        self.post_ids, self.last_id, self.connects = [], None, 0
        self.greenlet = gevent.spawn(self._run)

    def _run(self):
        while True:
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                with requests.get(self.url, headers=headers, stream=True, timeout=30) as response:
                    self.connects += response.status_code == 200
                    buffer = b""
                    for chunk in response.iter_content(chunk_size=None):
                        buffer += chunk
                        while b"\n\n" in buffer:
                            block, buffer = buffer.split(b"\n\n", 1)
                            for event in parse_sse(block.decode() + "\n\n"):
                                if event.get("id"):
                                    self.last_id = event["id"]
                                if event["event"] == "new_post":
                                    self.post_ids.append(event["data"]["post"]["id"])
            except (requests.RequestException, OSError):
                pass
            gevent.sleep(random.uniform(0, 1.0))


def test_a_reload_storm_resumes_every_client_without_loss_or_database_reads(deploy,
                                                                          fresh_postgres_url):
    [server] = deploy(workers=2, database="postgres", STREAMS_PER_USER=500)
    author = RestUser(server.url, "author")
    clients = [ResumingClient(f"{server.url}/stream/feed", author.token) for _ in range(200)]
    deadline = time.monotonic() + 20
    while min(c.connects for c in clients) < 1 and time.monotonic() < deadline:
        gevent.sleep(0.1)
    posted = [author.post(f"before {i}")["id"] for i in range(3)]
    before = _transactions(fresh_postgres_url)
    server.signal(signal.SIGHUP)  # new workers; old ones end their streams
    deadline = time.monotonic() + 20
    while min(c.connects for c in clients) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.1)
    reconnected = sum(c.connects >= 2 for c in clients)
    during = _transactions(fresh_postgres_url) - before
    posted += [author.post(f"after {i}")["id"] for i in range(3)]
    deadline = time.monotonic() + 20
    while any(len(c.post_ids) < len(posted) for c in clients) and time.monotonic() < deadline:
        gevent.sleep(0.1)
    for client in clients:
        client.greenlet.kill()
    assert reconnected == len(clients)
    assert all(c.post_ids == posted for c in clients), "every client, every post, in order, once"
    # 200 resumes read Redis only: the database saw (almost) nothing while they happened.
    assert during <= 10, f"{during} database transactions during the reconnect storm"


def _transactions(url):
    """Return the database's committed and rolled-back transactions so far (stats flushed)."""
    import psycopg

    gevent.sleep(1.2)  # backends report their statistics when idle for a second
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        return conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                            "WHERE datname = %s", (name,)).fetchone()[0]

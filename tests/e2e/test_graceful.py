"""Graceful deploys: SIGTERM and SIGHUP end streams cleanly, and clients resume without loss."""
import random
import signal
import time

import gevent
import pytest
import requests

from tests.support.clients import SUBSCRIBERS, RestUser, parse_sse
from tests.support.waits import wait_until

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
    wait_until(lambda: min(c.connects for c in clients) >= 1, timeout=20)
    posted = [author.post(f"before {i}")["id"] for i in range(3)]
    # The resume path must not touch the database: take the database away while 200 clients
    # reconnect and resume. Any query on that path would fail their reconnects.
    _allow_connections(fresh_postgres_url, False)
    try:
        server.signal(signal.SIGHUP)  # new workers; old ones end their streams
        wait_until(lambda: min(c.connects for c in clients) >= 2, timeout=20)
    finally:
        _allow_connections(fresh_postgres_url, True)
    assert all(c.connects >= 2 for c in clients)
    posted += [author.post(f"after {i}")["id"] for i in range(3)]
    wait_until(lambda: all(len(c.post_ids) >= len(posted) for c in clients), timeout=20)
    for client in clients:
        client.greenlet.kill()
    assert all(c.post_ids == posted for c in clients), "every client, every post, in order, once"


def _allow_connections(url, allowed):
    """Open or close the test database to new connections, ending the open ones when closing."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (name,))

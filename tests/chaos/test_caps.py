"""Caps. The per-user stream limit across workers and servers (counted in Redis), the
per-address limit on opening streams, and slowloris and silent connections beside a real client.
"""
import random
import socket
import subprocess
import time

import gevent
import pytest
import requests

from tests.chaos.harness import record, remember, scaled
from tests.support.clients import RestUser
from tests.support.load import CLIENTS, SSEClient, WSClient
from tests.support.procs import clients_by_worker
from tests.support.waits import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]

LIMIT = 6


@pytest.fixture(scope="module")
def servers(deployment, redis_url):
    return deployment.start(servers=2, workers=2, redis_url=redis_url, STREAMS_PER_USER=LIMIT)


def workers_holding(servers, clients):
    """Return the worker pids that serve *clients* (each with its ``server``)."""
    return {pid for server in servers
            for pid in clients_by_worker(server, [c for c in clients if c.server is server])}


def test_the_stream_limit_holds_across_workers_and_servers(servers, redis_url):
    import redis

    first, second = servers
    alice = remember(RestUser(first.url, "capped"))
    kinds = ["sse", "ws"]
    open_ = []
    for i in range(LIMIT):
        server = servers[i % 2]
        client = CLIENTS[kinds[(i // 2) % 2]](("127.0.0.1", server.port), "feed", alice.token)
        client.server = server
        open_.append(client.start())
        assert client.wait_established() is not None, client.end_reason
    where = workers_holding(servers, open_)
    slots = redis.Redis.from_url(redis_url)
    key = f"{first.env['REDIS_PREFIX']}:streams:{{{alice.id}}}"
    for _ in range(10):
        # The kernel picks the worker that accepts each stream, and one may take all of a
        # server's: move a WebSocket stream (its close is seen at once) until a server's
        # streams sit on both of its workers.
        if len(where) >= 3:
            break
        moved = next(c for c in open_ if c.transport == "ws")
        moved.stop()
        wait_until(lambda: slots.zcard(key) < LIMIT, timeout=10, interval=0.05)
        open_.remove(moved)
        client = CLIENTS["ws"](("127.0.0.1", moved.server.port), "feed", alice.token)
        client.server = moved.server
        open_.append(client.start())
        assert client.wait_established() is not None, client.end_reason
        where = workers_holding(servers, open_)
    refused = {}
    for server in servers:
        for kind in ("sse", "ws", "poll"):
            extra = CLIENTS[kind](("127.0.0.1", server.port), "feed", alice.token)
            extra.start()
            extra.wait_established(timeout=5)
            gevent.sleep(0.1)
            refused[f"{kind}@{server.port}"] = extra.refusals[-1] if extra.refusals else extra.status
            extra.stop()
    retry_after = requests.get(f"{second.url}/stream/feed", timeout=5,
                               headers={"Authorization": f"Bearer {alice.token}"}).headers.get(
        "Retry-After")
    counted = slots.zcard(key)
    open_[0].stop()
    again = SSEClient(("127.0.0.1", second.port), "feed", alice.token)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the closed stream's slot comes back within moments
        again.start()
        if again.wait_established(timeout=2) is not None:
            break
        gevent.sleep(0.2)
    for client in open_ + [again]:
        client.stop()
    figures = {"limit": LIMIT, "servers": 2, "worker processes holding them": len(where),
               "7th stream answered": sorted(set(refused.values())), "Retry-After": retry_after,
               "counted in Redis": counted, "a slot freed is usable": again.up or again.connected_at
               is not None}
    ok = (set(refused.values()) == {429} and counted == LIMIT and len(where) >= 3
          and retry_after and figures["a slot freed is usable"])
    record("caps", "test_the_stream_limit_holds_across_workers_and_servers",
           f"{LIMIT} streams of one user over 2 servers × 2 workers, then one more on each "
           "server and transport", figures, "the 7th is 429 everywhere; the count lives in Redis",
           ok)
    assert set(refused.values()) == {429}, refused
    assert counted == LIMIT and len(where) >= 3 and retry_after
    assert figures["a slot freed is usable"]


def test_opening_streams_is_rate_limited_per_address(deployment, redis_url):
    # Long-polls have a per-user budget of their own (RATELIMIT_LONGPOLL): lift it here, where
    # the question is only whether the stream-open budget counts them.
    [server] = deployment.start(workers=2, redis_url=redis_url, RATELIMIT_ENABLED="true",
                                RATELIMIT_STREAM_OPENS="10/second", STREAMS_PER_USER=1000,
                                RATELIMIT_LONGPOLL="1000/second")
    alice = remember(RestUser(server.url, "hasty"))
    statuses, retry_after = [], set()
    began = time.monotonic()
    for i in range(40):
        client = (SSEClient if i % 2 else WSClient)(("127.0.0.1", server.port), "feed",
                                                     alice.token)
        client.start()
        client.wait_established(timeout=5)
        statuses.append(client.refusals[-1] if client.refusals else client.status)
        client.stop()
    burst_seconds = time.monotonic() - began
    hit = requests.get(f"{server.url}/stream/feed", timeout=5,
                       headers={"Authorization": f"Bearer {alice.token}"})
    if hit.status_code == 429:
        retry_after.add(hit.headers.get("Retry-After"))
    # Another address has its own budget (127.0.0.2 is loopback too).
    other = SSEClient(("127.0.0.1", server.port), "feed", alice.token, source="127.0.0.2").start()
    other_ok = other.wait_established(timeout=5) is not None
    other.stop()
    # Long-poll is a chain of requests by design: not counted by the stream-open budget.
    polls = [requests.get(f"{server.url}/poll/feed?timeout=0", timeout=5,
                          headers={"Authorization": f"Bearer {alice.token}"}).status_code
             for _ in range(30)]
    from app.config import load_config

    default = load_config("/tmp", {"JWT_SECRET_KEY": "x" * 40})["RATELIMIT_STREAM_OPENS"]
    opened = sum(1 for s in statuses if s in (200, 101))
    limited = sum(1 for s in statuses if s == 429)
    allowed = 10 * (int(burst_seconds) + 2)  # a fixed window per second, straddled at most
    figures = {"opens tried": len(statuses), "seconds": round(burst_seconds, 2),
               "opened": opened, "refused 429": limited, "other statuses": sorted(
                   {s for s in statuses if s not in (200, 101, 429)}),
               "WebSocket refused before the upgrade": all(
                   s in (101, 429) for s in statuses[::2]),
               "another address": "open" if other_ok else "refused",
               "long-polls refused": polls.count(429), "default": default}
    ok = (limited > 0 and opened <= allowed and other_ok and 429 not in polls
          and not figures["other statuses"])
    record("caps", "test_opening_streams_is_rate_limited_per_address",
           "40 SSE/WebSocket opens from one address with RATELIMIT_STREAM_OPENS=10/second, "
           "2 workers sharing the count in Redis", figures,
           "429 (with Retry-After, before any upgrade) over the limit; other addresses unaffected",
           ok)
    assert limited > 0 and opened <= allowed, figures
    assert other_ok and 429 not in polls and not figures["other statuses"], figures


def test_slowloris_and_silent_sockets_do_not_stop_a_real_client(servers):
    server = servers[0]
    alice = remember(RestUser(server.url, "patient"))
    slow_count, silent_count = scaled(500, minimum=500), scaled(200, minimum=200)
    sockets = []

    def slowloris():
        sock = socket.create_connection(("127.0.0.1", server.port))
        sockets.append(sock)
        sock.sendall(b"GET /stream/feed HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            while True:
                gevent.sleep(random.uniform(1.0, 3.0))
                sock.sendall(b"X-Slow: %d\r\n" % random.randrange(10 ** 6))
        except OSError:
            return

    drippers = [gevent.spawn(slowloris) for _ in range(slow_count)]
    for _ in range(silent_count):
        sockets.append(socket.create_connection(("127.0.0.1", server.port)))
    gevent.sleep(2)
    held = len(subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{server.port} )"],
                              capture_output=True, text=True).stdout.splitlines())
    firsts, events = [], []
    for attempt in range(5):
        for kind in ("sse", "ws", "poll"):
            client = CLIENTS[kind](("127.0.0.1", server.port), "feed", alice.token,
                                   **({"wait": 10} if kind == "poll" else {}))
            client.start()
            took = client.wait_established(timeout=10)
            firsts.append(took if took is not None else float("inf"))
            gevent.sleep(0.2)  # a long-poll is waiting for its next answer
            posted = time.time()
            alice.post(f"through the crowd {attempt} {kind}")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not client.post_ids:
                gevent.sleep(0.005)
            events.append(time.time() - posted if client.post_ids else float("inf"))
            client.stop()
    for greenlet in drippers:
        greenlet.kill(block=False)
    for sock in sockets:
        sock.close()
    figures = {"slowloris sockets": slow_count, "silent sockets": silent_count,
               "server connections during it": held,
               "first message s (max of 15)": round(max(firsts), 3),
               "new post delivered s (max of 15)": round(max(events), 3)}
    ok = max(firsts) <= 1 and max(events) <= 1
    record("caps", "test_slowloris_and_silent_sockets_do_not_stop_a_real_client",
           "500 slowloris sockets dripping header lines and 200 silent TCP connections; a real "
           "client on SSE, WebSocket and long-poll, 5 times each", figures,
           "its first event ≤ 1 s", ok)
    assert ok, figures

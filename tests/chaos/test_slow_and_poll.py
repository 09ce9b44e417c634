"""Items 6 and 8: a client that never reads beside healthy ones, and long-poll chains.

Both run on one post channel of a two-worker server: a writer comments on the post (2 KiB at
50/s for item 6, 20/s for item 8) and every comment is an event on the post's channel.
"""
import base64
import os
import random
import re
import socket
import time

import gevent
import pytest
import requests

from tests.chaos.harness import record, remember, scaled, seconds
from tests.support.clients import RestUser
from tests.support.load import (
    PollClient,
    Publisher,
    SSEClient,
    WSClient,
    percentile,
    start_all,
    stop_all,
    summarize,
    wait_established,
)
from tests.support.procs import rss_kib

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture(scope="module")
def server(deployment, redis_url):
    [server] = deployment.start(workers=2, redis_url=redis_url, STREAMS_PER_USER=100)
    return server


@pytest.fixture(scope="module")
def author(server):
    return remember(RestUser(server.url, "writer"))


@pytest.fixture(scope="module")
def readers(server):
    return [remember(RestUser(server.url, f"reader{i}")) for i in range(10)]


def commenter(author, post_id, size):
    pad = "y" * max(0, size - 12)

    def write(n):
        return author.call("POST", f"/api/posts/{post_id}/comments",
                           json={"content": f"{n:08d} {pad}"})
    return write


def slow_consumers(server):
    """Return ``{transport: streams cut for not reading}`` from /metrics."""
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    found = re.findall(r'feed_slow_consumers_dropped_total\{transport="(\w+)"\} (\S+)', text)
    return {transport: float(value) for transport, value in found}


def never_reading_socket(server, path, token, websocket):
    """Open a stream and never read a byte from it (default socket buffers)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    if websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws/{path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    else:
        request = (f"GET /stream/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {token}\r\n\r\n")
    sock.sendall(request.encode())
    return sock


def window_p99(clients, start, end):
    values = [latency for c in clients for at, latency in c.stats.timeline if start <= at < end]
    return percentile(values, 0.99), len(values)


@pytest.mark.timeout(600)
def test_a_client_that_never_reads_is_cut_and_the_others_keep_up(server, author, readers):
    post = author.post("a busy thread")
    path = f"post/{post['id']}"
    base = ("127.0.0.1", server.port)
    total = scaled(200, minimum=40)
    clients = []
    for i in range(total):
        kind = SSEClient if i % 2 == 0 else WSClient
        client = kind(base, path, readers[i % len(readers)].token, label=f"healthy-{i}")
        client.stats.timeline = []
        clients.append(client)
    start_all(clients, spread=1.0)
    assert not wait_established(clients, timeout=60)
    pids = server.worker_pids()
    rss = []  # (at, {pid: KiB})

    def sample_rss():
        while True:
            rss.append((time.time(), {pid: rss_kib(pid) for pid in pids}))
            gevent.sleep(0.5)

    sampler = gevent.spawn(sample_rss)
    # 1,850 characters of comment: with the author and ids, each event is about 2 KiB of JSON.
    publisher = Publisher(commenter(author, post["id"], 1850), 50, 3600).start()
    baseline = seconds(30, minimum=8)
    gevent.sleep(baseline)
    slow_at = time.time()
    before = slow_consumers(server)
    slow_user = remember(RestUser(server.url, "sloth"))
    stuck = [never_reading_socket(server, path, slow_user.token, websocket=False),
             never_reading_socket(server, path, slow_user.token, websocket=True)]
    cut = {}
    while time.time() - slow_at < 25 and len(cut) < 2:
        now = slow_consumers(server)
        for transport in ("sse", "ws"):
            if transport not in cut and now.get(transport, 0) > before.get(transport, 0):
                cut[transport] = time.time() - slow_at
        gevent.sleep(0.25)
    gevent.sleep(seconds(10, minimum=4))
    end = time.time()
    publisher.stop()
    publisher.join()
    sampler.kill()
    written = {body["id"] for _, status, _, body, _ in publisher.results if status == 201}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(written <= set(c.comment_ids) for c in clients):
        gevent.sleep(0.2)
    short = [c.label for c in clients if not written <= set(c.comment_ids)]
    stop_all(clients)
    for sock in stuck:
        sock.close()
    summary = summarize(clients)
    # The baseline is the second half of the calm phase (the first half includes the ramp-up).
    p99_before, n_before = window_p99(clients, slow_at - baseline / 2, slow_at)
    p99_during, n_during = window_p99(clients, slow_at, end)
    base_rss = [kib for at, kib in rss if slow_at - 5 <= at < slow_at]
    peak_rss = [kib for at, kib in rss if slow_at <= at <= end]
    growth = max(max(p[pid] for p in peak_rss) - max(b[pid] for b in base_rss) for pid in pids)
    figures = {"healthy clients": total, "events/s": round(publisher.achieved_rate, 1),
               "write statuses": publisher.statuses, "SSE cut after s": round(cut.get("sse", -1), 1),
               "WS cut after s": round(cut.get("ws", -1), 1),
               "healthy p99 before ms": round(p99_before, 1),
               "healthy p99 with the slow ones ms": round(p99_during, 1),
               "p99 growth ms": round(p99_during - p99_before, 1),
               "worker RSS growth MiB": round(growth / 1024, 1),
               "healthy gaps": summary["gaps"], "healthy missing": len(short),
               "latency samples": n_before + n_during}
    ok = (len(cut) == 2 and max(cut.values()) <= 15 and p99_during - p99_before <= 50
          and growth <= 20 * 1024 and not short and summary["gaps"] == 0
          and set(publisher.statuses) == {201})
    record(6, "test_a_client_that_never_reads_is_cut_and_the_others_keep_up",
           "an SSE and a WebSocket client that never read, beside healthy ones, 50 events/s of "
           "2 KiB on one post", figures,
           "cut ≤ 15 s; healthy p99 +≤ 50 ms; worker RSS +≤ 20 MiB; nothing lost", ok)
    assert set(publisher.statuses) == {201}, publisher.statuses
    assert set(cut) == {"sse", "ws"} and max(cut.values()) <= 15, cut
    assert not short and summary["gaps"] == 0, (short[:5], summary)
    assert p99_during - p99_before <= 50, figures
    assert growth <= 20 * 1024, figures


@pytest.mark.timeout(600)
def test_long_poll_chains_have_no_gap_across_requests(server, author, readers):
    post = author.post("polled thread")
    path = f"post/{post['id']}"
    base = ("127.0.0.1", server.port)
    head = requests.get(f"{server.url}/poll/{path}?timeout=0", timeout=5,
                        headers={"Authorization": f"Bearer {readers[0].token}"}).json()["cursor"]
    total = scaled(50, minimum=12)
    chains = []
    for i in range(total):
        # Eager chains, chains that pause between requests, and sleepy ones that let more than
        # 100 events pile up (one answer carries at most 100: the cursor must continue exactly).
        if i % 6 == 5:
            # About 100 events pile up between two requests: many answers hit the cap.
            pause = lambda: random.uniform(3.5, 6.5)  # noqa: E731
        elif i % 2:
            pause = lambda: random.uniform(0.0, 0.4)  # noqa: E731
        else:
            pause = None
        client = PollClient(base, path, readers[i % len(readers)].token, label=f"chain-{i}",
                            wait=random.choice([1, 3, 10]), pause=pause)
        client.begin_at(head)
        chains.append(client)
    start_all(chains)
    assert not wait_established(chains, timeout=30)
    duration = seconds(120)
    publisher = Publisher(commenter(author, post["id"], 200), 20, duration).start()
    publisher.join()
    written = [body["id"] for n, status, _, body, _ in sorted(publisher.results) if status == 201]
    deadline = time.monotonic() + 60  # the sleepy chains catch up 100 events per request
    while time.monotonic() < deadline and not all(set(written) <= set(c.comment_ids)
                                                  for c in chains):
        gevent.sleep(0.2)
    stop_all(chains)
    summary = summarize(chains)
    # Order is the channel's (seq), checked by the accounting; here: each event exactly once.
    exact = sum(1 for c in chains if sorted(c.comment_ids) == sorted(written))
    figures = {"chains": total, "seconds": duration, "events": len(written),
               "requests": sum(c.requests for c in chains),
               "largest answer": max(c.max_batch for c in chains),
               "chains with every event in order": f"{exact}/{total}",
               "gaps": summary["gaps"], "reorders": summary["reorders"],
               "duplicates": summary["duplicates"], "resyncs": summary["resyncs"]}
    ok = (exact == total and summary["gaps"] == 0 and summary["duplicates"] == 0
          and summary["reorders"] == 0 and summary["resyncs"] == 0)
    record(8, "test_long_poll_chains_have_no_gap_across_requests",
           "long-poll chains (eager, pausing, and sleeping past 100 events) at 20 events/s",
           figures, "0 gaps across response→request boundaries", ok)
    assert set(publisher.statuses) == {201}, publisher.statuses
    assert exact == total, [(c.label, len(c.comment_ids)) for c in chains
                            if sorted(c.comment_ids) != sorted(written)][:5]
    assert summary["gaps"] == 0 and summary["duplicates"] == 0 and summary["reorders"] == 0
    assert max(c.max_batch for c in chains) <= 100

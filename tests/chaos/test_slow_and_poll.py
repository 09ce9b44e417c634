"""A client that never reads beside healthy ones, and long-poll chains.

Both run on one post channel of a two-worker server: a writer comments on the post (2 KiB at
50/s for the slow consumer, 20/s for the long-poll chains) and every comment is an event on
the post's channel.
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

from tests.chaos.harness import FULL, record, remember, scaled, seconds
from tests.support.accounting import percentile, summarize
from tests.support.clients import RestUser
from tests.support.load import (
    PollClient,
    Publisher,
    SSEClient,
    WSClient,
    start_all,
    stop_all,
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


def pooled_p99(clients, windows):
    """Return the p99 of the clients' latencies inside any of *windows* and the sample count."""
    values = [latency for c in clients for at, latency in c.stats.timeline
              if any(start <= at < end for start, end in windows)]
    return percentile(values, 0.99), len(values)


def cut_both(server, path, token):
    """Open a never-reading SSE and WebSocket stream; return ``{transport: seconds to cut}``.

    Waits up to 25 s; a transport missing from the answer was not cut in that time.
    """
    before = slow_consumers(server)
    opened = time.time()
    stuck = [never_reading_socket(server, path, token, websocket=False),
             never_reading_socket(server, path, token, websocket=True)]
    cut = {}
    while time.time() - opened < 25 and len(cut) < 2:
        gevent.sleep(0.5)
        now = slow_consumers(server)
        for transport in ("sse", "ws"):
            if transport not in cut and now.get(transport, 0) > before.get(transport, 0):
                cut[transport] = time.time() - opened
    for sock in stuck:
        sock.close()
    return cut


def calm_window(server, duration):
    """Watch /metrics as :func:`cut_both` does, for *duration* s; return the streams cut meanwhile.

    The same polling in both kinds of window keeps its own cost out of the comparison.
    """
    before = now = slow_consumers(server)
    ends = time.time() + duration
    while time.time() < ends:
        gevent.sleep(0.5)
        now = slow_consumers(server)
    return sum(now.values()) - sum(before.values())


@pytest.mark.timeout(600)
def test_a_client_that_never_reads_is_cut_and_the_others_keep_up(server, author, readers):
    """Calm windows alternate with windows in which a never-reading pair is open until cut.

    Alternating, and pooling each kind of window, keeps the comparison fair on a busy machine:
    the healthy clients' latency drifts with the load of the whole host (with busy loops on
    both cores of this 2-core machine, the p99 moved by -108 to +125 ms between the halves of
    runs that opened no slow reader at all), and one before/after split measures that drift.
    """
    post = author.post("a busy thread")
    path = f"post/{post['id']}"
    base = ("127.0.0.1", server.port)
    total = scaled(200, minimum=40)
    cycles = scaled(3)  # one slow pair in the CI tier: its latency is only recorded there
    calm = seconds(10, minimum=4)
    # Registered now: a password hash costs a worker tens of milliseconds of CPU, which would
    # land inside a measured window.
    sloth = remember(RestUser(server.url, "sloth"))
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
    gevent.sleep(seconds(10, minimum=4))  # ramp-up, not measured
    calm_windows, slow_windows, cuts, healthy_cut = [], [], [], 0
    for _ in range(cycles):
        began = time.time()
        healthy_cut += calm_window(server, calm)
        calm_windows.append((began, time.time()))
        began = time.time()
        cuts.append(cut_both(server, path, sloth.token))
        gevent.sleep(1)  # the cut's own aftermath belongs to the slow window
        slow_windows.append((began, time.time()))
    publisher.stop()
    publisher.join()
    sampler.kill()
    written = {body["id"] for _, status, _, body, _ in publisher.results if status == 201}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(written <= set(c.comment_ids) for c in clients):
        gevent.sleep(0.2)
    short = [c.label for c in clients if not written <= set(c.comment_ids)]
    stop_all(clients)
    summary = summarize(clients)
    p99_calm, n_calm = pooled_p99(clients, calm_windows)
    p99_slow, n_slow = pooled_p99(clients, slow_windows)
    first_calm = calm_windows[0]
    base_rss = [kib for at, kib in rss if first_calm[0] <= at < first_calm[1]]
    later = [kib for at, kib in rss if at >= slow_windows[0][0]]
    growth = max(max(p[pid] for p in later) - max(b[pid] for b in base_rss) for pid in pids)
    cut_after = [max(cut.values()) if len(cut) == 2 else None for cut in cuts]
    figures = {"healthy clients": total, "events/s": round(publisher.achieved_rate, 1),
               "write statuses": publisher.statuses, "slow pairs": cycles,
               "SSE cut after s": [round(cut.get("sse", -1), 1) for cut in cuts],
               "WS cut after s": [round(cut.get("ws", -1), 1) for cut in cuts],
               "healthy p99 in calm windows ms": round(p99_calm, 1),
               "healthy p99 with a slow pair ms": round(p99_slow, 1),
               "p99 growth ms": round(p99_slow - p99_calm, 1),
               "worker RSS growth MiB": round(growth / 1024, 1),
               "healthy streams cut": healthy_cut,
               "healthy gaps": summary["gaps"], "healthy missing": len(short),
               "latency samples": n_calm + n_slow}
    all_cut = None not in cut_after and max(cut_after) <= 15
    ok = (all_cut and not healthy_cut and p99_slow - p99_calm <= 50 and growth <= 20 * 1024
          and not short and summary["gaps"] == 0 and set(publisher.statuses) == {201})
    record("slow consumers", "test_a_client_that_never_reads_is_cut_and_the_others_keep_up",
           f"{cycles} times, an SSE and a WebSocket client that never read, beside healthy "
           "ones, 50 events/s of 2 KiB on one post; calm windows between them",
           figures, "cut ≤ 15 s; healthy p99 +≤ 50 ms; worker RSS +≤ 20 MiB; nothing lost", ok)
    assert set(publisher.statuses) == {201}, publisher.statuses
    assert all_cut, cuts
    assert not short and summary["gaps"] == 0, (short[:5], summary)
    assert not healthy_cut, figures
    assert growth <= 20 * 1024, figures
    if FULL:
        # A latency target: asserted by the full tier on a quiet machine (make chaos), only
        # recorded here — beside the rest of make test on 2 cores it measures the neighbours.
        assert p99_slow - p99_calm <= 50, figures


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
    record("long-poll chains", "test_long_poll_chains_have_no_gap_across_requests",
           "long-poll chains (eager, pausing, and sleeping past 100 events) at 20 events/s",
           figures, "0 gaps across response→request boundaries", ok)
    assert set(publisher.statuses) == {201}, publisher.statuses
    assert exact == total, [(c.label, len(c.comment_ids)) for c in chains
                            if sorted(c.comment_ids) != sorted(written)][:5]
    assert summary["gaps"] == 0 and summary["duplicates"] == 0 and summary["reorders"] == 0
    assert max(c.max_batch for c in chains) <= 100

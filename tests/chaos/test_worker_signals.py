"""A worker killed with -9, the master reloaded (-HUP) and stopped (-TERM), under clients.

Clients reconnect the way EventSource does (after a retry delay, resuming from the last id
they saw). Which worker serves each connection is read from the kernel (``ss``), so the test
knows whose clients a kill -9 should drop — and that nobody else's drop.
"""
import os
import signal
import time

import gevent
import pytest

from tests.chaos.harness import FULL, record, scaled
from tests.chaos.world import FeedWorld
from tests.support.accounting import summarize
from tests.support.load import start_all, stop_all, wait_established
from tests.support.procs import worker_of_peers
from tests.support.waits import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]

RECONNECT = (1.0, 2.0)  # seconds before a dropped client resumes
RATE = 20


@pytest.fixture(scope="module")
def server(deployment, redis_url):
    [server] = deployment.start(workers=2, redis_url=redis_url, STREAMS_PER_USER=60,
                                GUNICORN_GRACEFUL_TIMEOUT=5)
    return server


@pytest.fixture(scope="module")
def world(server):
    return FeedWorld(server, owners=50, name="sig")


def open_slots(server, world, redis_client):
    """Return ``{owner index: streams counted in Redis now}`` (expired entries excluded)."""
    now = int(time.time() * 1000)
    prefix = server.env["REDIS_PREFIX"]
    return {i: redis_client.zcount(f"{prefix}:streams:{{{owner.id}}}", now, "+inf")
            for i, owner in enumerate(world.owners)}


def streaming(clients):
    """Return ``{owner index: open SSE and WebSocket streams}`` of *clients*."""
    counts = {}
    for client in clients:
        if client.transport != "poll" and client.up:
            counts[client.owner] = counts.get(client.owner, 0) + 1
    return counts


SLOT_TTL_MS = 30_000  # the Redis broker's slot lifetime: unrefreshed entries expire after it


def counters_recover(server, world, clients, redis_client, struck):
    """Check the per-user counters after a fault; return ``(live exact after s, stale entries)``.

    Every entry written or refreshed after the fault (the heartbeat refreshes each open stream's
    entry every 10 s) must match an open stream exactly; entries not refreshed since — a killed
    worker's — expire by themselves ``SLOT_TTL_MS`` after the fault at the latest. The full tier
    also waits for them to go, and reports when the whole count was exact again.
    """
    stop_all([c for c in clients if c.transport == "poll"])  # a long-poll holds a slot only while
    began = time.monotonic()                                 # it waits: not part of the count
    want = streaming(clients)
    prefix = server.env["REDIS_PREFIX"]
    keys = {i: f"{prefix}:streams:{{{owner.id}}}" for i, owner in enumerate(world.owners)}
    fresh_after = int(struck * 1000) + SLOT_TTL_MS

    def mismatches():
        """``{owner index: (entries counted, streams open)}`` where the two differ."""
        counted = {i: redis_client.zcount(key, f"({fresh_after}", "+inf")
                   for i, key in keys.items()}
        return {i: (n, want.get(i, 0)) for i, n in counted.items() if n != want.get(i, 0)}

    try:
        wait_until(lambda: not mismatches(), timeout=20, interval=0.5)
    except AssertionError:
        # Said in the failure: which feeds' counts stayed off, and how (a flake seen once).
        return None, mismatches() or "exact just after the wait", None
    live = time.monotonic() - began
    now = int(time.time() * 1000)
    stale = sum(redis_client.zcount(key, now, fresh_after) for key in keys.values())
    whole = None
    if FULL:
        try:
            wait_until(lambda: all(redis_client.zcount(key, int(time.time() * 1000), "+inf")
                                   == want.get(i, 0) for i, key in keys.items()),
                       timeout=SLOT_TTL_MS / 1000 + 15, interval=0.5)
            whole = time.monotonic() - began
        except AssertionError:
            whole = None
    return live, stale, whole


def run_phase(server, world, fault, label, restart=None):
    """Start clients, apply *fault*, and return the figures and the pass checks."""
    import redis

    redis_client = redis.Redis.from_url(server.env["REDIS_URL"])
    clients = world.clients(scaled(1000))
    for client in clients:
        client.auto_reconnect = RECONNECT
    start_all(clients, spread=2.0)
    assert not wait_established(clients, timeout=60)
    publisher = world.start_publisher(RATE, 3600)
    gevent.sleep(2)
    owners = worker_of_peers(server.port)
    where = {c.label: owners.get(c.local_port) for c in clients if c.transport != "poll"}
    drops_before = {c.label: len(c.drops) for c in clients}
    hit = fault()
    struck = time.time()
    if restart:
        restart()
    deadline = struck + 20
    dropped = lambda c: len(c.drops) > drops_before[c.label]  # noqa: E731
    while time.time() < deadline:
        if all(c.up for c in clients) and all(not dropped(c) or c.reconnects for c in clients):
            break
        gevent.sleep(0.1)
    gevent.sleep(2)
    publisher.stop()
    publisher.join()
    missing = world.wait_delivered(clients, timeout=20, refetch=True)
    affected = [c for c in clients if dropped(c)]
    times = [c.reconnects[-1][1] - struck for c in affected if c.reconnects]
    within = sum(1 for t in times if t <= 15)
    bystanders = [c for c in clients if c.transport != "poll" and where.get(c.label) not in hit
                  and dropped(c)] if hit is not None else []
    summary = summarize(clients)
    live, stale, whole = counters_recover(server, world, clients, redis_client, struck)
    lost = [c for c in affected if not c.reconnects or c.reconnects[-1][1] - struck > 15]
    stop_all(clients)
    share = 100.0 * within / max(len(affected), 1)
    figures = {"fault": label, "clients": len(clients), "dropped": len(affected),
               "bystanders dropped": len(bystanders) if hit is not None else "n/a",
               "reconnected ≤ 15 s %": round(share, 2),
               "reconnect s (max)": round(max(times), 2) if times else None,
               "missing after resume": sum(missing.values()), "gaps": summary["gaps"],
               "duplicates": summary["duplicates"], "resyncs": summary["resyncs"],
               "write statuses": publisher.statuses,
               "live stream counters exact after s": round(live, 1) if live is not None else None,
               "stale entries left (expire ≤ 30 s)" if live is not None
               else "counted/open where they differ": stale,
               "whole count exact after s": round(whole, 1) if whole is not None else "n/a (CI)",
               "not back ≤ 15 s": [(c.label, c.end_reason, c.refusals[-3:], len(c.drops))
                                   for c in lost][:5]}
    checks = {"reconnect": share >= 99.0, "no loss": not missing and summary["gaps"] == 0,
              "no dups": summary["duplicates"] == 0, "counters": live is not None
              and (not FULL or whole is not None),
              "bystanders": not bystanders, "some dropped": bool(affected)}
    return figures, checks


@pytest.mark.timeout(600)
def test_kill_9_a_worker_drops_only_its_clients_and_they_resume(server, world):
    def kill():
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        return {victim}

    figures, checks = run_phase(server, world, kill, "kill -9 one worker")
    wait_until(lambda: len(server.worker_pids()) == 2, timeout=30)
    record("worker signals", "test_kill_9_a_worker_drops_only_its_clients_and_they_resume",
           "kill -9 of one of two workers under clients and a writer at 20 posts/s", figures,
           "only its clients drop; ≥ 99% back ≤ 15 s; 0 loss; counters recover",
           all(checks.values()))
    assert all(checks.values()), (checks, figures)


@pytest.mark.timeout(600)
def test_master_hup_reloads_workers_and_clients_resume(server, world):
    def hup():
        server.signal(signal.SIGHUP)
        return None

    figures, checks = run_phase(server, world, hup, "kill -HUP the master (graceful reload)")
    record("worker signals", "test_master_hup_reloads_workers_and_clients_resume",
           "gunicorn master SIGHUP: new workers, old ones end their streams", figures,
           "≥ 99% back ≤ 15 s; 0 loss; counters recover", all(checks.values()))
    assert all(checks.values()), (checks, figures)


@pytest.mark.timeout(600)
def test_master_term_then_restart_and_clients_resume(server, world):
    def term():
        server.signal(signal.SIGTERM)
        return None

    def restart():
        server.process.wait(30)
        server.start()

    figures, checks = run_phase(server, world, term, "kill -TERM the master, then start it again",
                                restart=restart)
    record("worker signals", "test_master_term_then_restart_and_clients_resume",
           "gunicorn master SIGTERM (streams end, server exits) and a restart on the same port",
           figures, "≥ 99% back ≤ 15 s of the TERM; 0 loss; counters recover",
           all(checks.values()))
    assert all(checks.values()), (checks, figures)

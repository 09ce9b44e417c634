"""Redis killed, its pub/sub links cut, paused, hung and black-holed mid-stream.

One private redis-server (tests stop and pause it) behind a two-worker server, with stream
clients that reconnect like EventSource (resuming from the last id) and a writer that keeps
posting. Faults come from Redis itself (SHUTDOWN NOSAVE, CLIENT KILL TYPE pubsub, CLIENT PAUSE,
CONFIG SET client-output-buffer-limit), from signals (kill -STOP/-CONT of redis-server and of a
worker) and from the TCP proxy (a stalled network path between the workers and Redis).
"""
import os
import signal
import time

import gevent
import gevent.pool
import pytest
import requests

from tests.chaos.harness import record, remember, scaled, seconds
from tests.chaos.world import FeedWorld
from tests.support.accounting import summarize
from tests.support.clients import RestUser
from tests.support.load import SSEClient, start_all, stop_all, wait_established
from tests.support.procs import clients_by_worker
from tests.support.tcpproxy import TCPProxy
from tests.support.waits import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]

CLIENTS = scaled(250, minimum=40)
RECONNECT = (0.5, 1.0)  # seconds a dropped client waits before resuming (EventSource-like)
LARGE = 45  # followers from which an author is large, on this module's server


@pytest.fixture(scope="module")
def server(deployment, private_redis):
    # Large authors from 45 followers: the world's two are, the 40 fans' celebrity below is not.
    [server] = deployment.start(workers=2, redis_url=private_redis.url, STREAMS_PER_USER=100,
                                LARGE_AUTHOR_FOLLOWERS=LARGE)
    return server


@pytest.fixture(scope="module")
def world(server):
    return FeedWorld(server, owners=10, large=2, threshold=LARGE)  # two of them large authors


class Watcher:
    """Send ``GET <path>`` every *interval* seconds, each in its own greenlet; keep the answers."""

    def __init__(self, url, interval=0.2, timeout=10):
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.samples = []  # (sent at, answered at, status, json or None)
        self._greenlet = None
        self._pending = []

    def start(self):
        self._greenlet = gevent.spawn(self._run)
        return self

    def _run(self):
        while True:
            self._pending.append(gevent.spawn(self._one))
            gevent.sleep(self.interval)

    def _one(self):
        sent = time.time()
        try:
            response = requests.get(self.url, timeout=self.timeout)
            status = response.status_code
            body = response.json() if "json" in response.headers.get("Content-Type", "") else None
        except requests.RequestException:
            status, body = "error", None
        self.samples.append((sent, time.time(), status, body))

    def stop(self):
        self._greenlet.kill()
        gevent.joinall(self._pending, timeout=self.timeout + 1)

    def between(self, start, end):
        return [s for s in self.samples if start <= s[0] <= end]


def reconnecting_clients(world, count):
    clients = world.clients(count)
    for client in clients:
        client.auto_reconnect = RECONNECT
    start_all(clients, spread=1.0)
    assert not wait_established(clients, timeout=60)
    return clients


def resynced_since(client, since):
    """Return when *client* got resync_required after *since*, or None."""
    times = [at for kind, at in client.last_messages if kind == "resync_required" and at >= since]
    return min(times) if times else None


# -- Redis outages -----------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_redis_shutdown_mid_stream_gives_resync_within_10_s_and_no_500(server, world,
                                                                      private_redis):
    clients = reconnecting_clients(world, CLIENTS)
    health = Watcher(f"{server.url}/healthz").start()
    publisher = world.start_publisher(10, 3600)
    gevent.sleep(2)
    down = time.time()
    private_redis.stop()  # SHUTDOWN NOSAVE: history, epochs, slots and revocations are gone
    gevent.sleep(2)
    private_redis.start()
    up = time.time()
    recovered = {}
    deadline = up + 15
    while time.time() < deadline and len(recovered) < len(clients):
        for client in clients:
            at = resynced_since(client, down)
            if at is not None:
                recovered[client.label] = at - up
        gevent.sleep(0.1)
    gevent.sleep(1)
    publisher.stop()
    publisher.join()
    health.stop()
    missing = world.wait_delivered(clients, timeout=20, refetch=True)
    stop_all(clients)
    summary = summarize(clients)
    degraded = health.between(down + 0.5, up - 0.3)
    healthy_again = [s[1] - up for s in health.samples if s[0] > up and s[2] == 200]
    worst = max(recovered.values()) if recovered else None
    figures = {"clients": len(clients), "resync within s (max)": round(worst or -1, 2),
               "clients recovered": f"{len(recovered)}/{len(clients)}",
               "write statuses": publisher.statuses,
               "/healthz while down": sorted({(s[2], (s[3] or {}).get("status")) for s in degraded}),
               "/healthz ok again after s": round(min(healthy_again), 2) if healthy_again else None,
               "silent gaps": summary["gaps"], "duplicates": summary["duplicates"]}
    ok = (len(recovered) == len(clients) and worst <= 10 and set(publisher.statuses) <= {201, 503}
          and degraded and all(s[2] == 503 and s[3]["status"] == "degraded" for s in degraded)
          and summary["gaps"] == 0 and not missing)
    record("Redis outages", "test_redis_shutdown_mid_stream_gives_resync_within_10_s_and_no_500",
           "Redis SHUTDOWN NOSAVE mid-stream, back after 2 s, writer posting 10/s", figures,
           "resync or exact replay ≤ 10 s; writes 201/503, never 500; /healthz degraded", ok)
    assert set(publisher.statuses) <= {201, 503}, publisher.statuses
    assert degraded and all(s[2] == 503 and s[3]["status"] == "degraded" for s in degraded), degraded
    assert len(recovered) == len(clients), [c.label for c in clients if c.label not in recovered]
    assert worst <= 10, recovered
    assert summary["gaps"] == 0 and summary["duplicates"] == 0, summary
    assert not missing, missing


@pytest.mark.timeout(300)
def test_pubsub_links_killed_ten_times_lose_nothing(server, world, private_redis):
    redis = private_redis.client()
    clients = reconnecting_clients(world, CLIENTS)
    publisher = world.start_publisher(10, 3600)
    gap = seconds(3, minimum=0.5)
    recoveries, killed = [], 0
    for _ in range(10):
        gevent.sleep(gap)
        cut = time.time()
        killed += redis.client_kill_filter(_type="pubsub")
        # Everything written up to the cut and a second after it (while the links were down).
        gevent.sleep(1.0)
        mark = time.time()
        try:
            wait_until(lambda: not world.missing(clients, answered_before=mark), timeout=10,
                       interval=0.05)
            recoveries.append(time.time() - cut)
        except AssertionError:
            recoveries.append(float("inf"))
    publisher.stop()
    publisher.join()
    missing = world.wait_delivered(clients, timeout=20, refetch=True)
    stop_all(clients)
    summary = summarize(clients)
    figures = {"clients": len(clients), "kills": 10, "connections killed": killed,
               "all clients complete after s (max)": round(max(recoveries), 2),
               "resyncs": summary["resyncs"], "gaps": summary["gaps"],
               "duplicates": summary["duplicates"], "write statuses": publisher.statuses}
    ok = (max(recoveries) <= 10 and summary["gaps"] == 0 and summary["duplicates"] == 0
          and not missing and killed >= 10)
    record("Redis outages", "test_pubsub_links_killed_ten_times_lose_nothing",
           "CLIENT KILL TYPE pubsub 10 times under a writer posting 10/s", figures,
           "exact replay or resync ≤ 10 s after each kill; 0 silent gaps", ok)
    assert killed >= 10
    assert max(recoveries) <= 10, recoveries
    assert summary["gaps"] == 0 and summary["duplicates"] == 0, summary
    assert not missing, missing


@pytest.mark.timeout(300)
def test_redis_cutting_a_slow_worker_subscriber_loses_nothing(server, world, private_redis):
    """A worker frozen (kill -STOP) under a burst outgrows Redis's pub/sub output buffer limit.

    Redis then drops the worker's pub/sub connection — plain pub/sub would lose every message
    in that buffer without an error. The worker must notice, reconnect and fill every stream's
    gap from history.
    """
    redis = private_redis.client()
    # A celebrity followed by 40 users, each reading their feed on two streams: every post is
    # a pub/sub message per feed a worker serves, so a burst outgrows the kernel's socket
    # buffers.
    author = remember(RestUser(server.url, "celebrity"))
    followers = [remember(RestUser(server.url, f"fan{i}")) for i in range(40)]
    gevent.joinall([gevent.spawn(f.follow, author) for f in followers], raise_error=True)
    clients = [SSEClient(("127.0.0.1", server.port), "feed", f.token, label=f"fan-{i}-{k}")
               for i, f in enumerate(followers) for k in range(2)]
    for client in clients:
        client.auto_reconnect = RECONNECT
    start_all(clients)
    assert not wait_established(clients)
    before = {c["name"]: c["id"] for c in redis.client_list(_type="pubsub")}
    redis.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 1")
    # The kernel decides which worker accepts each stream, and one may get them all: freeze
    # the one that holds the most feeds.
    feeds_of = {pid: {c.label.split("-")[1] for c in held}
                for pid, held in clients_by_worker(server, clients).items()}
    victim = max(server.worker_pids(), key=lambda pid: len(feeds_of.get(pid, ())))
    feeds = len(feeds_of.get(victim, ()))
    big = "x" * 4900
    posts = []
    try:
        os.kill(victim, signal.SIGSTOP)
        # ~5 KiB on each of its feeds (20 or more): 80 posts are 8 MiB or more on the frozen
        # worker's one connection.
        pool = gevent.pool.Pool(8)
        # New connections only: a kept-alive one may belong to the frozen worker.
        jobs = [pool.spawn(requests.post, f"{server.url}/api/posts", timeout=30,
                           json={"content": f"{n} {big}"},
                           headers={"Authorization": f"Bearer {author.token}"})
                for n in range(80)]
        gevent.joinall(jobs)
        posts = [job.value.json()["id"] for job in jobs
                 if job.value is not None and job.value.status_code == 201]
        gevent.sleep(1.5)
    finally:
        os.kill(victim, signal.SIGCONT)
        redis.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")
    cont = time.time()
    wanted = set(posts)
    wait_until(lambda: all(wanted <= set(c.post_ids) for c in clients), timeout=15)
    complete = time.time() - cont
    after = {c["name"]: c["id"] for c in redis.client_list(_type="pubsub")}
    name = next(n for n in before if n.endswith(f"-{victim}"))
    stop_all(clients)
    summary = summarize(clients)
    figures = {"streams": len(clients), "posts in the burst": len(posts),
               "feeds read through the frozen worker": feeds,
               "pub/sub messages to the frozen worker": len(posts) * feeds,
               "worker's pub/sub connection replaced": after.get(name) != before[name],
               "all streams complete after CONT s": round(complete, 2),
               "gaps": summary["gaps"], "duplicates": summary["duplicates"],
               "resyncs": summary["resyncs"]}
    ok = after.get(name) != before[name] and summary["gaps"] == 0 and summary["duplicates"] == 0
    record("Redis outages", "test_redis_cutting_a_slow_worker_subscriber_loses_nothing",
           "worker kill -STOP under an 80-post burst of 5 KiB events to 41 feeds, with CONFIG SET "
           "client-output-buffer-limit pubsub 256kb: Redis drops its pub/sub link", figures,
           "every stream complete, 0 gaps, 0 duplicates", ok)
    assert after.get(name) != before[name], "Redis dropped the frozen worker's pub/sub link"
    assert summary["gaps"] == 0 and summary["duplicates"] == 0, summary


@pytest.mark.timeout(300)
def test_a_client_pause_during_writes_ends_in_resync_not_silence(server, world, private_redis):
    redis = private_redis.client()
    clients = reconnecting_clients(world, scaled(100, minimum=20))
    publisher = world.start_publisher(10, 3600)
    gevent.sleep(1)
    paused = time.time()
    redis.client_pause(3000)  # every client of Redis waits 3 s: writes time out after 2 s
    gevent.sleep(3)
    back = time.time()
    gevent.sleep(2)
    publisher.stop()
    publisher.join()
    lost = [n for n, status, _, _, at in publisher.results if paused <= at <= back + 1]
    missing = world.wait_delivered(clients, timeout=15, refetch=True)
    stop_all(clients)
    summary = summarize(clients)
    figures = {"clients": len(clients), "write statuses": publisher.statuses,
               "writes answered during the pause": len(lost), "resyncs": summary["resyncs"],
               "silent gaps": summary["gaps"], "missing after refetch": len(missing)}
    ok = set(publisher.statuses) <= {201, 503} and summary["gaps"] == 0 and not missing
    record("Redis outages", "test_a_client_pause_during_writes_ends_in_resync_not_silence",
           "CLIENT PAUSE 3000 under a writer posting 10/s", figures,
           "writes 201/503; a lost publish becomes resync_required, never a silent gap", ok)
    assert set(publisher.statuses) <= {201, 503}, publisher.statuses
    assert summary["gaps"] == 0, summary
    assert not missing, missing


# -- hung Redis -----------------------------------------------------------------------------------


def hang_and_recover(server, world, freeze, thaw, hang_seconds, label):
    """Freeze Redis (or the path to it) under load; return the figures of what followed."""
    clients = reconnecting_clients(world, scaled(100, minimum=20))
    pids = server.worker_pids()
    health = Watcher(f"{server.url}/healthz").start()
    # A route that needs neither Redis nor the database: is the worker itself responsive?
    alive = Watcher(f"{server.url}/api/openapi.json", timeout=30).start()
    publisher = world.start_publisher(5, 3600)
    gevent.sleep(1)
    frozen = time.time()
    freeze()
    gevent.sleep(hang_seconds)
    pings_during = [sum(1 for kind, at in c.last_messages if kind == "ping" and at > frozen + 2)
                    for c in clients if c.transport != "poll"]
    thaw()
    thawed = time.time()
    newcomers = []
    attempt_until = thawed + 15
    while time.time() < attempt_until and not any(c.up for c in newcomers):
        client = SSEClient(("127.0.0.1", server.port), "feed", world.owners[0].token)
        newcomers.append(client.start())
        client.wait_established(timeout=1)
        if not client.up:
            gevent.sleep(0.05)
    first_newcomer = next((c.connected_at - thawed for c in newcomers if c.up), None)
    gevent.sleep(1)
    publisher.stop()
    publisher.join()
    missing = world.wait_delivered(clients, timeout=20, refetch=True)
    health.stop()
    alive.stop()
    stop_all(clients + newcomers)
    summary = summarize(clients)
    detected = [s[1] - frozen for s in health.between(frozen, thawed) if s[2] == 503]
    slowest = max((s[1] - s[0] for s in alive.between(frozen, thawed)), default=None)
    log = server.log()
    figures = {"fault": label, "seconds": hang_seconds,
               "/healthz degraded after s": round(min(detected), 2) if detected else None,
               "slowest non-Redis request during it s": round(slowest, 3) if slowest else None,
               "SSE/WS streams still pinged during it":
                   f"{sum(1 for p in pings_during if p)}/{len(pings_during)}",
               "workers restarted": len(set(pids) - set(server.worker_pids())),
               "new client's first event after thaw s": round(first_newcomer, 3)
               if first_newcomer is not None else None,
               "newcomer attempts": len(newcomers), "write statuses": publisher.statuses,
               "write errors": publisher.errors[:3],
               "silent gaps": summary["gaps"], "missing after refetch": len(missing)}
    checks = {"detected": bool(detected) and min(detected) <= 15,
              "responsive": slowest is not None and slowest <= 1.0,
              "pinged": all(pings_during),
              "no restart": set(pids) == set(server.worker_pids()) and "WORKER TIMEOUT" not in log,
              "newcomer": first_newcomer is not None and first_newcomer <= 1.0,
              "writes": set(publisher.statuses) <= {201, 503},
              "no loss": summary["gaps"] == 0 and not missing}
    return figures, checks


@pytest.mark.timeout(300)
def test_hung_redis_is_detected_and_nothing_hangs(server, world, private_redis):
    pid = private_redis.process.pid
    hang = seconds(20, minimum=6)
    figures, checks = hang_and_recover(server, world, lambda: os.kill(pid, signal.SIGSTOP),
                                       lambda: os.kill(pid, signal.SIGCONT), hang,
                                       "redis-server kill -STOP")
    record("hung Redis", "test_hung_redis_is_detected_and_nothing_hangs",
           f"redis-server kill -STOP for {hang:g} s under streams and writes", figures,
           "degraded ≤ 15 s; no worker hangs or restarts; a new client connects ≤ 1 s after CONT",
           all(checks.values()))
    assert all(checks.values()), (checks, figures)


@pytest.mark.timeout(300)
def test_a_blackholed_redis_path_is_detected_and_nothing_hangs(deployment, private_redis):
    proxy = TCPProxy(private_redis.port).start()
    try:
        [server] = deployment.start(workers=2, redis_url=f"redis://{proxy.url_host}/0",
                                    STREAMS_PER_USER=100)
        world = FeedWorld(server, owners=5, name="hole")
        hang = seconds(20, minimum=6)
        figures, checks = hang_and_recover(server, world, proxy.stall, proxy.resume, hang,
                                           "TCP proxy stalls the path to Redis")
    finally:
        proxy.stop()
    record("hung Redis", "test_a_blackholed_redis_path_is_detected_and_nothing_hangs",
           f"the network path to Redis black-holed for {hang:g} s (user-space proxy stall)",
           figures,
           "degraded ≤ 15 s; no worker hangs or restarts; a new client connects ≤ 1 s after",
           all(checks.values()))
    assert all(checks.values()), (checks, figures)

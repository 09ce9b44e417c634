"""The benchmark scenarios, run against one target: open streams, publish, measure, analyse."""
import asyncio
import gc
import resource
import time
import uuid

from bench import analyze
from bench.client import Http, NchanPoller, Poller, Tally, open_streams, sse_request, ws_request
from bench.targets import cpu_seconds, rss_kb

FULL = {"n": 5000, "max_seconds": 15, "latency_seconds": 20, "channels": 100, "spread_rate": 50,
        "spread_seconds": 15, "followers": 1000, "feed_posts": 10, "ws_n": 5000,
        "poll_n": 200, "poll_rate": 1, "poll_seconds": 10, "one_worker_n": 10000,
        "one_worker_seconds": 10, "two_workers_n": 19000, "two_workers_seconds": 10, "users": 10, "window": 6, "settle": 3.0, "restart": True}
SMOKE = {"n": 200, "max_seconds": 1.0, "latency_seconds": 1.5, "channels": 10,
         "spread_rate": 20, "spread_seconds": 1.5, "followers": 40, "feed_posts": 2, "ws_n": 200,
         "poll_n": 40, "poll_rate": 2, "poll_seconds": 1.5, "one_worker_n": 300,
         "one_worker_seconds": 1.5, "two_workers_n": 400, "two_workers_seconds": 1.5, "users": 3, "window": 4, "settle": 0.3, "restart": False}


def _cpu_self():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Run:
    """One target during the benchmark: its users, its posts, and the measuring helpers."""

    def __init__(self, target, redis, sizes, log=print, profile_dir=None):
        self.target, self.redis, self.sizes, self.log = target, redis, sizes, log
        self.profile_dir = profile_dir
        self.host, self.port = target.host, target.port
        self.tally = Tally()
        self.results = []
        self.users = []  # (id, token, username)
        self.author = None
        self.followers = []
        self.publish_failures = 0

    # -- setup through the write API ----------------------------------------------------------

    async def _each(self, calls, concurrency=16):
        """Run ``call(http)`` coroutines over a few keep-alive connections; return results."""
        queue = asyncio.Queue()
        for _ in range(concurrency):
            queue.put_nowait(Http(self.host, self.port))

        async def one(call):
            http = await queue.get()
            try:
                return await call(http)
            finally:
                queue.put_nowait(http)

        try:
            return await asyncio.gather(*(one(c) for c in calls))
        finally:
            while not queue.empty():
                queue.get_nowait().close()

    async def register(self, prefix, count):
        """Register *count* users; return ``(id, token, username)`` of each."""
        async def one(i, http):
            name = f"{prefix}{i}"
            status, body = await http.call("POST", "/api/auth/register",
                                           {"username": name, "password": "bench-password"})
            assert status == 201, body
            data = analyze.orjson.loads(body)
            return data["user"]["id"], data["access_token"], name

        return await self._each([lambda h, i=i: one(i, h) for i in range(count)])

    async def setup(self):
        """Register the stream users, an author and the author's followers."""
        if not self.target.has_api:  # channels by name, nobody to register
            self.users = [(f"user{i}", None, f"user{i}") for i in range(self.sizes["users"])]
            return
        self.users = await self.register("bench_user_", self.sizes["users"])
        [self.author] = await self.register("bench_author_", 1)
        self.followers = await self.register("bench_follower_", self.sizes["followers"])

        async def follow(user, http):
            status, body = await http.call("PUT", f"/api/users/{self.author[2]}/follow",
                                           token=user[1])
            assert status == 200, body

        await self._each([lambda h, u=u: follow(u, h) for u in self.followers])

    async def new_posts(self, count):
        """Create *count* posts by the first stream user; return their ids."""
        if not self.target.has_api:
            return [uuid.uuid4().hex[:12] for _ in range(count)]

        async def one(i, http):
            status, body = await http.call("POST", "/api/posts", {"content": f"post {i}"},
                                           token=self.users[0][1])
            assert status == 201, body
            return analyze.orjson.loads(body)["id"]

        return await self._each([lambda h, i=i: one(i, h) for i in range(count)], concurrency=4)

    # -- streams ----------------------------------------------------------------------------

    async def open(self, transport, specs):
        """Open one stream per ``(kind, key, token)``; return them and the failures."""
        target = self.target
        if transport == "poll":
            kind_of = NchanPoller if target.poller == "nchan" else Poller
            pollers = [kind_of(self.host, self.port, target.stream_path("poll", kind, key), token)
                       for kind, key, token in specs]
            for poller in pollers:
                poller.task = asyncio.ensure_future(poller.run(self.tally))
            return pollers, []
        make = {"sse": lambda path, token: sse_request(self.host, self.port, path, token),
                "ws": lambda path, token: ws_request(self.host, self.port,
                                                     path + f"?token={token}")}[transport]
        requests = [make(target.stream_path(transport, kind, key), token)
                    for kind, key, token in specs]
        return await open_streams(self.host, self.port, requests, self.tally,
                                  wait_first=target.answers_at_once)

    async def warm(self, streams, publish, timeout=60):
        """Publish warm-up events until every stream got one; return the indexes of the rest."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if all(s.count for s in streams):
                break
            await publish()
            await asyncio.sleep(0.3)
        never = {i for i, s in enumerate(streams) if not s.count}
        self.log(f"    {len(streams)} streams warm in {time.monotonic() - started:.1f} s"
                 + (f", {len(never)} never got an event" if never else ""))
        return never

    # -- publishing -------------------------------------------------------------------------

    async def _comment(self, http, post_id, content):
        method, path, body = self.target.publish_request(post_id, content)
        status, _ = await http.call(method, path, body, token=self.users[-1][1])
        return status in self.target.published

    async def _post(self, http, content):
        status, _ = await http.call("POST", "/api/posts", {"content": content},
                                    token=self.author[1])
        return status == 201

    async def closed_loop(self, post_id, tag, per_event, seconds, window, connections=3):
        """Comment as fast as the streams keep up: at most *window* events not yet delivered."""
        tally, base, sent, marks = self.tally, self.tally.events, 0, set()
        stop = time.monotonic() + seconds

        async def worker(http):
            nonlocal sent
            while time.monotonic() < stop:
                if sent - (tally.events - base) / per_event >= window:
                    await asyncio.sleep(0.001)
                    continue
                sent += 1
                number = sent
                if await self._comment(http, post_id, f"{tag} {number}"):
                    marks.add(number)
                else:
                    self.publish_failures += 1

        https = [Http(self.host, self.port) for _ in range(connections)]
        await asyncio.gather(*(worker(h) for h in https))
        for http in https:
            http.close()
        return {post_id: marks}

    async def paced(self, publish_one, keys, tag, rate, seconds, connections=4):
        """Publish ``rate`` events a second for *seconds*, round-robin over *keys*."""
        pool = asyncio.Queue()
        for _ in range(connections):
            pool.put_nowait(Http(self.host, self.port))
        marks = {key: set() for key in keys}
        loop = asyncio.get_running_loop()
        start, tasks = loop.time(), []

        async def one(number, key):
            http = await pool.get()
            try:
                if await publish_one(http, key, f"{tag} {number}"):
                    marks[key].add(number)
                else:
                    self.publish_failures += 1
            finally:
                pool.put_nowait(http)

        for i in range(int(rate * seconds)):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i + 1, keys[i % len(keys)])))
        await asyncio.gather(*tasks)
        while not pool.empty():
            pool.get_nowait().close()
        return marks

    # -- measuring --------------------------------------------------------------------------

    def snapshot(self):
        pids = self.target.pids()
        return {"at": time.time(), "cpu": cpu_seconds(pids), "redis_cpu": self.redis.cpu_seconds(),
                "self_cpu": _cpu_self(), "events": self.tally.events}

    async def measure(self, name, transport, streams, keys_of, publish, never=(), extra=None,
                      drain_seconds=20):
        """Run *publish* (which returns ``{key: numbers}``), wait for delivery, record a result.

        :param keys_of: the channel key of each stream, in order.
        """
        tag = f"{name.replace('_', '')}{int(time.time() * 1000) % 100000}"
        failed_before = self.publish_failures
        profiler = None
        if self.profile_dir:
            from bench.profiling import Profiler

            profiler = Profiler(self.profile_dir, f"{name}-{self.target.name}",
                                self.target.pids()[1:])
        # The load generator's own garbage collection would stamp its pauses on the servers'
        # latencies: with 19,000 streams' objects a full collection takes most of a second.
        # What a phase allocates is freed by reference counts; the cycles wait for its end.
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            before = self.snapshot()
            marks = await publish(tag)
            want = sum(len(marks.get(key, ())) for key in keys_of)
            deadline = time.monotonic() + drain_seconds
            while self.tally.events - before["events"] < want and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            # The count may include stragglers of the phase before: wait until nothing more
            # comes.
            seen = self.tally.events
            while time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                if self.tally.events == seen:
                    break
                seen = self.tally.events
            after = self.snapshot()
        finally:
            gc.enable()
            gc.unfreeze()
        if profiler is not None:
            self.log(f"    profile of {name} on {self.target.name}:\n{profiler.stop()}")
        self.log(f"    {name}: {sum(len(m) for m in marks.values())} events, "
                 f"{self.tally.events - before['events']}/{want} deliveries in "
                 f"{after['at'] - before['at']:.1f} s, "
                 f"server CPU {after['cpu'] - before['cpu']:.1f} s")
        extra = {**(extra or {}), "publish_failures": self.publish_failures - failed_before}
        self.results.append({"pending": (name, transport, streams, keys_of, marks, tag,
                                         before, after, never, extra)})

    def finish(self, closed_streams):
        """Analyse the pending measurements of *closed_streams* (after the run)."""
        for entry in self.results:
            if "pending" not in entry or entry["pending"][2] is not closed_streams:
                continue
            name, transport, streams, keys_of, marks, tag, before, after, never, extra = \
                entry.pop("pending")
            entry.update(self._summary(name, transport, streams, keys_of, marks, tag, before,
                                       after, never, extra))

    def _summary(self, name, transport, streams, keys_of, marks, tag, before, after, never,
                 extra):
        """Parse what each stream got; a stream counts as one error at most."""
        objects, errors, kinds = [], 0, {}
        for index, stream in enumerate(streams):
            if transport == "poll":
                objects.append(analyze.poll_objects(stream.answers))
                errors += bool(stream.errors or index in never)
                for error in stream.errors:
                    kinds[error] = kinds.get(error, 0) + 1
                continue
            raw, ends = stream.raw()
            status = analyze.http_status(raw)
            kind = None
            if status not in (200, 101):
                kind = f"HTTP {status} {analyze.error_code(raw)}"
            elif stream.closed_at is not None and stream.closed_at < after["at"]:
                kind = "ended by the server"
            elif index in never:
                kind = "no event before the measurement"
            if kind:
                errors += 1
                kinds[kind] = kinds.get(kind, 0) + 1
            parse = analyze.sse_objects if transport == "sse" else analyze.ws_objects
            objects.append(parse(raw, ends))
        expected = [marks.get(key, set()) for key in keys_of]
        summary = analyze.summarise(objects, tag, expected)
        deliveries = summary["deliveries"]
        start = before["at"]
        span = (summary.pop("last_at") or after["at"]) - start
        summary.pop("first_at")
        per = (lambda seconds: round(seconds / deliveries * 1e6, 1)) if deliveries else \
            (lambda seconds: None)
        return {
            "scenario": name, "target": self.target.name, "transport": transport,
            "workers": self.target.workers, "streams": len(keys_of),
            "channels": len(set(keys_of)), "events": sum(len(m) for m in marks.values()),
            **summary, "errors": errors, "error_kinds": kinds,
            "seconds": round(span, 3),
            "deliveries_per_s": round(deliveries / span) if span > 0 else None,
            "server_cpu_s": round(after["cpu"] - before["cpu"], 2),
            "server_cpu_us_per_delivery": per(after["cpu"] - before["cpu"]),
            "redis_cpu_us_per_delivery": per(after["redis_cpu"] - before["redis_cpu"]),
            "loadgen_cpu_us_per_delivery": per(after["self_cpu"] - before["self_cpu"]),
            **extra,
        }

    async def quiesce(self, timeout=30.0):
        """Wait until the server is idle: it tears down the streams a scenario closed."""
        await asyncio.sleep(self.sizes["settle"])
        deadline = time.monotonic() + timeout
        previous = cpu_seconds(self.target.pids())
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = cpu_seconds(self.target.pids())
            if now - previous < 0.05:
                return
            previous = now

    async def idle_memory(self, streams_open):
        """Return server RSS and Redis memory of idle streams opened by *streams_open*."""
        await asyncio.sleep(self.sizes["settle"])
        rss0, redis0 = rss_kb(self.target.pids()), self.redis.memory_kb()
        started = time.monotonic()
        streams, failed = await streams_open()
        await asyncio.sleep(self.sizes["settle"])
        rss1, redis1 = rss_kb(self.target.pids()), self.redis.memory_kb()
        opened = max(len(streams) - len(failed), 1)
        self.log(f"    {len(streams)} streams opened ({len(failed)} failed) in "
                 f"{time.monotonic() - started:.1f} s")
        return streams, failed, {
            "idle_rss_kb_per_stream": round((rss1 - rss0) / opened, 2),
            "idle_redis_kb_per_stream": round((redis1 - redis0) / opened, 2),
            "server_rss_mb": round(rss1 / 1024, 1)}


def close(streams):
    """Close every stream."""
    for stream in streams:
        stream.close()


async def sweep(run, publish):
    """Publish once more after closing: servers notice a closed client at their next write.

    Flask-SSE sends no pings, so without it the closed streams of one scenario would stay
    subscribed (one Redis connection each) through the next ones.
    """
    try:
        await publish()
    except (OSError, AssertionError):
        pass


def _specs(run, kind, keys):
    users = run.users
    return [(kind, key, users[i % len(users)][1]) for i, key in enumerate(keys)]


async def one_channel(run, transport, n, phases=("max", "2eps"), seconds=None):
    """One post's channel to *n* subscribers: as fast as possible, then 2 events/s."""
    sizes = run.sizes
    [post] = await run.new_posts(1)
    keys = [post] * n
    specs = _specs(run, "post", keys)
    streams, failed, memory = await run.idle_memory(lambda: run.open(transport, specs))
    if transport == "poll":
        memory = {}
    comment = run._comment
    never = await run.warm(streams, lambda: run._each(
        [lambda h: comment(h, post, "warmup")], concurrency=1))
    name = f"{transport}_1ch"
    if "max" in phases:
        await run.measure(f"{name}_max", transport, streams, keys,
                          lambda tag: run.closed_loop(post, tag, n, sizes["max_seconds"],
                                                      sizes["window"]),
                          never=never, extra=memory)
    if "2eps" in phases:
        rate, seconds = (sizes["poll_rate"], sizes["poll_seconds"]) if transport == "poll" else \
            (2, seconds or sizes["latency_seconds"])
        await run.measure(f"{name}_{rate}eps", transport, streams, keys,
                          lambda tag: run.paced(comment, [post], tag, rate, seconds),
                          never=never, extra=memory if "max" not in phases else {})
    close(streams)
    await sweep(run, lambda: run._each([lambda h: comment(h, post, "sweep")], concurrency=1))
    run.finish(streams)


async def spread(run, n):
    """*n* SSE subscribers over many posts, a fixed total rate of comments round-robin."""
    sizes = run.sizes
    posts = await run.new_posts(sizes["channels"])
    keys = [posts[i % len(posts)] for i in range(n)]
    streams, failed = await run.open("sse", _specs(run, "post", keys))

    async def warm_all():
        await run._each([lambda h, p=p: run._comment(h, p, "warmup") for p in posts], 8)

    never = await run.warm(streams, warm_all)
    rate, seconds = sizes["spread_rate"], sizes["spread_seconds"]
    await run.measure(f"sse_{len(posts)}ch_{rate}eps", "sse", streams, keys,
                      lambda tag: run.paced(run._comment, posts, tag, rate, seconds),
                      never=never)
    close(streams)
    await sweep(run, warm_all)
    run.finish(streams)


async def feed(run):
    """The author's followers on their feeds; the author posts once a second."""
    sizes = run.sizes
    keys = [uid for uid, _, _ in run.followers]
    specs = [("feed", uid, token) for uid, token, _ in run.followers]
    streams, failed = await run.open("sse", specs)
    never = await run.warm(streams, lambda: run._each([lambda h: run._post(h, "warmup")], 1))

    async def post_one(http, key, content):
        return await run._post(http, content)

    async def publish(tag):
        marks = await run.paced(post_one, ["all"], tag, 1, sizes["feed_posts"])
        return {uid: marks["all"] for uid in keys}

    await run.measure("sse_feed_fanout", "sse", streams, keys, publish,
                      never=never)
    close(streams)
    await sweep(run, lambda: run._each([lambda h: run._post(h, "sweep")], 1))
    run.finish(streams)


STEPS = ("sse", "spread", "feed", "ws", "poll")


# How many streams one box holds: (scenario, gunicorn workers, its sizes' prefix). Run on our
# server only, each on a server of its own; 19,000 streams stay under the 20,000 open files
# a process may have here (the load generator holds one per stream).
CAPACITY = (("sse_1ch_1worker_2eps", 1, "one_worker"),
            ("sse_1ch_2workers_2eps", 2, "two_workers"))


async def capacity(run, scenario, prefix):
    """One channel to many idle-then-busy SSE streams at 2 events/s, named *scenario*."""
    sizes = run.sizes
    if not run.users:  # the other scenarios did not run (--capacity-only)
        run.users = await run.register("bench_user_", sizes["users"])
    await one_channel(run, "sse", sizes[f"{prefix}_n"], phases=("2eps",),
                      seconds=sizes[f"{prefix}_seconds"])
    for result in run.results:
        result["scenario"] = scenario
    return run.results


async def run_all(run, only=STEPS):
    """Run every scenario this target supports; return the results."""
    sizes = run.sizes
    await run.setup()
    steps = [("sse", "sse one channel", lambda: one_channel(run, "sse", sizes["n"])),
             ("spread", "sse spread", lambda: spread(run, sizes["n"])),
             ("feed", "sse feed fan-out", lambda: feed(run)),
             ("ws", "ws one channel", lambda: one_channel(run, "ws", sizes["ws_n"])),
             ("poll", "long-poll one channel",
              lambda: one_channel(run, "poll", sizes["poll_n"], phases=("2eps",)))]
    target = run.target
    steps = [step for step in steps if step[0] in only
             and (step[0] != "feed" or target.feeds)
             and (step[0] not in ("ws", "poll") or step[0] in target.transports)]
    for index, (key, label, step) in enumerate(steps):
        started = time.monotonic()
        await step()
        gc.collect()
        run.log(f"  {run.target.name}: {label} done in {time.monotonic() - started:.1f} s")
        if index < len(steps) - 1 and sizes["restart"]:
            # Each scenario starts on a fresh server: Flask-SSE keeps the Redis connection of
            # a closed stream until garbage collection, and 5,000 of them would fill Redis's
            # maxclients; ours would spend the next scenario's CPU tearing down the last one's.
            run.target.restart()
        await run.quiesce()
    return run.results

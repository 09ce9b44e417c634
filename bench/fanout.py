"""The fan-out scenario: one author with 1,000 / 100,000 / 1,000,000 followers.

Per size it measures what a post and a reaction by that author cost: request time, Redis CPU
(``INFO cpu``, Redis's own) and Redis memory (``INFO memory``) per event, and how fast the
followers who are online on SSE get it. The ratio between sizes is the result (docs/fanout.md).

Setup per size, cheapest first: the online followers (and the author) are registered through
the API, since they need tokens; every other follower is inserted by SQL (one multi-row
``INSERT … SELECT FROM generate_series``) into a throwaway PostgreSQL database, the database
grows from one size to the next. Each size gets a fresh private redis-server and a fresh
two-worker gunicorn. A share of the followers is made "recently active": their feed channel
gets the Redis state an open stream leaves behind, by running the broker's own ``read`` script
(what an open without ``Last-Event-ID`` runs) for each of them in a pipeline.

The author is large (``LARGE_AUTHOR_FOLLOWERS``, 5,000 here as by default; 100 in the smoke
run) when the size reaches it: the bulk rows skip the follow service, so the benchmark applies
its rule by SQL, and the author's events then go once to the large-author channel.

Each phase (posts, then reactions on the first post) sends its requests one after another and
stops at its count, at its time budget, or at the first request over its timeout, which is
reported as such: the current code's 1,000,000 case would otherwise run for an hour.
"""
import asyncio
import os
import time
import uuid

import psycopg
import redis as redis_py

from bench import analyze
from bench.client import Http, Tally, open_streams, sse_request
from bench.targets import Ours, PrivateRedis, Redis, cpu_seconds

FULL = {"sizes": [1000, 100000, 1000000], "online": 1000, "active": 0.1, "posts": 40,
        "reactions": 40, "budget": 150.0, "timeout": 120.0, "drain": 60.0, "maxmemory": "8gb",
        "idle": 2.0, "threshold": 5000}
SMOKE = {"sizes": [40, 400], "online": 20, "active": 0.25, "posts": 3, "reactions": 3,
         "budget": 20.0, "timeout": 20.0, "drain": 10.0, "maxmemory": "256mb", "idle": 0.5,
         "threshold": 100}

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
# Bulk followers never sign in: a hash no password matches.
NO_PASSWORD = "!bench-no-login"


class PostgresOurs(Ours):
    """This project on a given PostgreSQL database and Redis (the fan-out scenario's server)."""

    def __init__(self, redis_url, database_url, workdir=None, threshold=5000):
        self._database_url = database_url
        # Every reaction fans out to the feeds, none conflated: the phase measures what one
        # reaction's fan-out costs (a reaction that opens a conflation window, the worst case).
        super().__init__(redis_url, workers=2, workdir=workdir,
                         extra_env={"FEED_COUNTS_SECONDS": "0",
                                    "LARGE_AUTHOR_FOLLOWERS": str(threshold)})

    def database_url(self):
        return self._database_url


def _create_database():
    name = f"feed_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_database(name):
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def grow_followers(database_url, author_id, online_ids, size, threshold):
    """Make the author's followers *size*: the online users first, then bulk rows by SQL.

    Then mark the author large or not by the follow service's rule (app/services/audience.py:
    large from *threshold* followers), which the bulk rows did not go through.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO follows (follower_id, followee_id, created_at) "
                     "SELECT unnest(%s::text[]), %s, now() AT TIME ZONE 'utc' "
                     "ON CONFLICT DO NOTHING", (list(online_ids[:size]), author_id))
        have = conn.execute("SELECT count(*) FROM follows WHERE followee_id = %s",
                            (author_id,)).fetchone()[0]
        start = conn.execute("SELECT count(*) FROM users WHERE username_key LIKE 'bulk\\_%%'"
                             ).fetchone()[0]
        step = 200000  # rows per statement: one transaction stays a few seconds long
        while have < size:
            count = min(step, size - have)
            conn.execute("""
                WITH new AS (
                  INSERT INTO users (id, username, username_key, display_name, password_hash,
                                     created_at)
                  SELECT gen_random_uuid()::text, 'bulk_' || g, 'bulk_' || g, 'bulk ' || g, %s,
                         now() AT TIME ZONE 'utc'
                  FROM generate_series(%s::bigint, %s::bigint) AS g
                  RETURNING id)
                INSERT INTO follows (follower_id, followee_id, created_at)
                SELECT id, %s, now() AT TIME ZONE 'utc' FROM new""",
                         (NO_PASSWORD, start, start + count - 1, author_id))
            start += count
            have += count
        conn.execute("UPDATE users SET large_author = (SELECT count(*) FROM (SELECT 1 FROM "
                     "follows WHERE followee_id = %s LIMIT %s) AS f) >= %s WHERE id = %s",
                     (author_id, threshold, threshold, author_id))
        conn.execute("VACUUM ANALYZE users")
        conn.execute("VACUUM ANALYZE follows")
        return [row[0] for row in conn.execute(
            "SELECT follower_id FROM follows WHERE followee_id = %s", (author_id,))]


def mark_active(redis_url, prefix, user_ids, batch=2000):
    """Give each user's feed channel the Redis state that one open and close leaves behind.

    An SSE open without ``Last-Event-ID`` runs the broker's ``read`` script with no position:
    it creates the channel's meta hash (epoch, sequence 0) and sets its TTL. The same script,
    with the same keys (``RedisBroker._keys``), runs here in pipelines.
    """
    from app.broker.scripts import SOURCES
    from app.events.channels import feed_channel
    from app.events.wire import new_epoch
    from app.redis_client import Scripts

    client = redis_py.Redis.from_url(redis_url)
    scripts = Scripts(client, SOURCES)
    max_age_ms = 86400 * 1000
    meta_ttl_ms = (86400 + 7 * 86400) * 1000  # RedisBroker.meta_ttl_ms at the defaults
    for i in range(0, len(user_ids), batch):
        pipe = client.pipeline(transaction=False)
        for uid in user_ids[i:i + batch]:
            tag = f"{prefix}:{{{feed_channel(uid)}}}"
            scripts.run(pipe, "read", [f"{tag}:m", f"{tag}:h"],
                        ["", 0, max_age_ms, meta_ttl_ms, new_epoch()])
        scripts.execute(pipe)  # loads the scripts into this fresh Redis
    client.close()


def _meta_keys(client, prefix):
    return sum(1 for _ in client.scan_iter(match=f"{prefix}:{{feed:*}}:m", count=5000))


async def _timed(http, method, path, body, token, timeout):
    """Return ``(status, body, seconds, sent_at)``; status None when over *timeout*."""
    sent_at, started = time.time(), time.monotonic()
    try:
        status, data = await asyncio.wait_for(http.call(method, path, body, token=token), timeout)
    except asyncio.TimeoutError:
        http.close()
        return None, b"", time.monotonic() - started, sent_at
    return status, data, time.monotonic() - started, sent_at


async def _quiet(redis, target, floor_rate, limit):
    """Wait until Redis and the server stop working (a timed-out request may still run)."""
    deadline = time.monotonic() + limit
    redis_before, server_before = redis.cpu_seconds(), cpu_seconds(target.pids())
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        redis_now, server_now = redis.cpu_seconds(), cpu_seconds(target.pids())
        if redis_now - redis_before <= floor_rate * 0.5 + 0.01 and server_now - server_before < 0.1:
            return
        redis_before, server_before = redis_now, server_now


class Phase:
    """One measured phase: requests sent one by one, then Redis's CPU and memory per event."""

    def __init__(self, name):
        self.name = name
        self.seconds, self.sent_at, self.timed_out, self.failed = [], [], 0, 0
        self.bodies = []
        self.redis_cpu_ms = self.redis_memory_kb = None

    def summary(self):
        ok = sorted(self.seconds)
        ms = (lambda p: round(analyze.percentile(ok, p) * 1000, 1) if ok else None)
        return {"requests": len(ok), "timed_out": self.timed_out, "failed": self.failed,
                "p50_ms": ms(50), "p99_ms": ms(99), "max_ms": ms(100),
                "redis_cpu_ms_per_event": self.redis_cpu_ms,
                "redis_memory_kb_per_event": self.redis_memory_kb}


async def _phase(phase, calls, options, redis, target, log):
    """Send *calls* (``(method, path, body, token)``) one by one within the budget."""
    cpu0, mem0, t0 = redis.cpu_seconds(), redis.memory_kb(), time.monotonic()
    http = Http(target.host, target.port)
    for method, path, body, token in calls:
        longest = max(phase.seconds, default=0)
        if time.monotonic() - t0 + longest > options["budget"]:
            log(f"    {phase.name}: time budget of {options['budget']:g} s spent")
            break
        status, data, seconds, sent_at = await _timed(http, method, path, body, token,
                                                      options["timeout"])
        if status is None:
            phase.timed_out += 1
            log(f"    {phase.name}: a request timed out after {options['timeout']:g} s")
            break
        if status not in (200, 201):
            phase.failed += 1
            log(f"    {phase.name}: HTTP {status} {data[:200]!r}")
            phase.sent_at.append(None)
            continue
        phase.seconds.append(seconds)
        phase.sent_at.append(sent_at)
        phase.bodies.append(data)
    http.close()
    return cpu0, mem0, t0


async def _settle(phase, started, streams, want, options, redis, target, idle_rate):
    """Wait for delivery and for Redis to go quiet, then record CPU and memory per event."""
    cpu0, mem0, t0 = started
    deadline = time.monotonic() + options["drain"]
    while time.monotonic() < deadline and any(s.count < want(s) for s in streams):
        await asyncio.sleep(0.05)
    await _quiet(redis, target, idle_rate, options["timeout"] * 3)
    events = len(phase.seconds) + phase.timed_out
    if events:
        cpu = redis.cpu_seconds() - cpu0 - idle_rate * (time.monotonic() - t0)
        phase.redis_cpu_ms = round(max(cpu, 0) / events * 1000, 2)
        phase.redis_memory_kb = round((redis.memory_kb() - mem0) / events, 1)


def _latencies(streams, post_sent, post_tag, reaction_post, reaction_sent):
    """Return per phase the delivery latencies (ms, from the request's send) and losses, and
    how many streams were told to resync (what they missed counts as lost here, though a
    client refetches it)."""
    out = {"posts": [], "reactions": []}
    lost = {"posts": 0, "reactions": 0}
    # Where losses fall tells a lost publish (every stream misses one post) from a stream
    # that fell behind (one stream misses several).
    missed_posts = [0] * len(post_sent)
    streams_losing = 0
    resynced = 0
    for stream in streams:
        raw, ends = stream.raw()
        got_posts, got_reactions, told_to_resync = set(), set(), False
        for at, event in analyze.sse_objects(raw, ends):
            if event.get("type") == "resync_required":
                told_to_resync = True
            elif event.get("type") == "new_post":
                mark = analyze.marker(event)
                if mark and mark[0] == post_tag and post_sent[mark[1]] is not None:
                    got_posts.add(mark[1])
                    out["posts"].append((at - post_sent[mark[1]]) * 1000)
            elif event.get("type") == "post_reaction" and event.get("post_id") == reaction_post:
                total = event["reaction_data"]["total"]
                if 0 < total <= len(reaction_sent) and reaction_sent[total - 1] is not None:
                    got_reactions.add(total)
                    out["reactions"].append((at - reaction_sent[total - 1]) * 1000)
        missed = [i for i, s in enumerate(post_sent) if s is not None and i not in got_posts]
        for i in missed:
            missed_posts[i] += 1
        lost["posts"] += len(missed)
        lost_reactions = sum(1 for i, s in enumerate(reaction_sent) if s is not None
                             and i + 1 not in got_reactions)
        lost["reactions"] += lost_reactions
        streams_losing += bool(missed or lost_reactions)
        resynced += told_to_resync
    result = {}
    for name, values in out.items():
        values.sort()
        result[name] = {"p50_ms": round(analyze.percentile(values, 50), 1) if values else None,
                        "p99_ms": round(analyze.percentile(values, 99), 1) if values else None,
                        "deliveries": len(values), "lost": lost[name]}
    result["streams_resynced"] = resynced
    result["streams_losing"] = streams_losing
    result["posts"]["missed_by_post"] = missed_posts
    return result


async def _register(host, port, prefix, count, concurrency=16):
    """Register *count* users through the API; return ``(id, token)`` of each."""
    pool = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(Http(host, port))

    async def one(i):
        http = await pool.get()
        try:
            status, body = await http.call("POST", "/api/auth/register",
                                           {"username": f"{prefix}{i}",
                                            "password": "bench-password"})
        finally:
            pool.put_nowait(http)
        assert status == 201, body
        data = analyze.orjson.loads(body)
        return data["user"]["id"], data["access_token"]

    try:
        return await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        while not pool.empty():
            pool.get_nowait().close()


async def _warm_up(target, token, rounds=4):
    """Post and react as a user nobody follows, so both workers' first requests are not timed."""
    http = Http(target.host, target.port)
    try:
        for i in range(rounds):
            status, body = await http.call("POST", "/api/posts", {"content": f"warmup {i}"},
                                           token=token)
            assert status == 201, body
            post_id = analyze.orjson.loads(body)["id"]
            status, body = await http.call("PUT", f"/api/posts/{post_id}/reaction",
                                           {"type": "like"}, token=token)
            assert status == 200, body
    finally:
        http.close()


def _followers(size, options, database_url, redis_url, prefix, author_id, online, log):
    """Give the author *size* followers, a share of them recently active; return the active."""
    started = time.monotonic()
    followers = grow_followers(database_url, author_id, [uid for uid, _ in online], size,
                               options["threshold"])
    log(f"  fanout {size:,}: {len(followers):,} followers in PostgreSQL "
        f"({time.monotonic() - started:.1f} s); the author is "
        f"{'large' if size >= options['threshold'] else 'small'}")
    online_ids = {uid for uid, _ in online}
    others = [uid for uid in followers if uid not in online_ids]
    every = max(1, round(1 / options["active"])) if options["active"] else 0
    active = [uid for uid, _ in online] + (others[::every] if every else [])
    started = time.monotonic()
    mark_active(redis_url, prefix, active)
    log(f"  fanout {size:,}: {len(active):,} feed channels recently active "
        f"({time.monotonic() - started:.1f} s)")
    return active


async def _cpu_rate(redis, seconds):
    """Return Redis's CPU seconds per second over the next *seconds*."""
    before = redis.cpu_seconds()
    await asyncio.sleep(seconds)
    return (redis.cpu_seconds() - before) / seconds


async def _one_size(size, options, database_url, workdir, people, log):
    """Measure one follower count on a fresh Redis and server; return its result."""
    redis_server = PrivateRedis(maxmemory=options["maxmemory"]).start()
    target = PostgresOurs(redis_server.url, database_url, workdir=workdir,
                          threshold=options["threshold"])
    streams = []
    try:
        target.start()
        if not people:
            [people["author"]] = await _register(target.host, target.port, "fan_author", 1)
            people["online"] = await _register(target.host, target.port, "fan_online_",
                                               options["online"])
        author_id, author_token = people["author"]
        online = people["online"][:size]
        active = _followers(size, options, database_url, redis_server.url, target.prefix,
                            author_id, online, log)
        check = Redis(redis_server.url)
        meta_before = _meta_keys(check.client, target.prefix) if size <= 20000 else None

        await _warm_up(target, people["online"][0][1])
        tally = Tally()
        requests = [sse_request(target.host, target.port, "/stream/feed", token)
                    for _, token in online]
        streams, failed = await open_streams(target.host, target.port, requests, tally)
        if meta_before is not None:
            # An open runs the same script on the same keys: it must find them all there.
            assert _meta_keys(check.client, target.prefix) == meta_before, \
                "mark_active made other keys than a stream open does"
        log(f"  fanout {size:,}: {len(streams) - len(failed)} followers online on SSE")

        # What Redis spends with nobody posting (the open streams' slot heartbeats) is taken
        # off each phase's CPU.
        await asyncio.sleep(options["idle"])
        idle_rate = await _cpu_rate(check, options["idle"])

        tag = f"fan{size}"
        posts = Phase("posts")
        calls = [("POST", "/api/posts", {"content": f"{tag} {i}"}, author_token)
                 for i in range(options["posts"])]
        mark = await _phase(posts, calls, options, check, target, log)
        sent = posts.sent_at
        await _settle(posts, mark, streams, lambda s: sum(x is not None for x in sent),
                      options, check, target, idle_rate)

        reactions = Phase("reactions")
        reaction_post = analyze.orjson.loads(posts.bodies[0])["id"] if posts.bodies else None
        if reaction_post:
            calls = [("PUT", f"/api/posts/{reaction_post}/reaction", {"type": "like"}, token)
                     for _, token in people["online"][:options["reactions"]]]
            mark = await _phase(reactions, calls, options, check, target, log)
            post_count = sum(x is not None for x in sent)
            await _settle(reactions, mark, streams,
                          lambda s: post_count + sum(x is not None for x in reactions.sent_at),
                          options, check, target, idle_rate)
        ended_early = sum(s.closed_at is not None for s in streams)
        for stream in streams:
            stream.close()
        post_sent = sent + [None] * (options["posts"] - len(sent))
        delivery = _latencies(streams, post_sent, tag, reaction_post, reactions.sent_at)
        delivery["streams_ended_early"] = ended_early
        result = {"followers": size, "large_author": size >= options["threshold"],
                  "online": len(streams) - len(failed),
                  "recently_active": len(active), "posts": posts.summary(),
                  "reactions": reactions.summary(), "delivery": delivery,
                  "redis_idle_cpu_ms_per_s": round(idle_rate * 1000, 2),
                  "redis_used_memory_mb": round(check.memory_kb() / 1024, 1)}
        log(f"  fanout {size:,}: POST p50 {result['posts']['p50_ms']} ms, reaction p50 "
            f"{result['reactions']['p50_ms']} ms, Redis {result['posts']['redis_cpu_ms_per_event']}"
            f" ms CPU and {result['posts']['redis_memory_kb_per_event']} KB per post")
        return result
    finally:
        for stream in streams:
            stream.close()
        target.halt()
        redis_server.stop()


async def run(options, log):
    """Run every size of *options* in ascending order; return one result per size."""
    name, database_url = _create_database()
    results, people = [], {}
    try:
        target = PostgresOurs("redis://unused", database_url)
        target.prepare()
        for size in sorted(options["sizes"]):
            started = time.monotonic()
            results.append(await _one_size(size, options, database_url, target.workdir,
                                           people, log))
            results[-1]["seconds"] = round(time.monotonic() - started, 1)
    finally:
        _drop_database(name)
    return results

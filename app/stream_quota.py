"""How many streams a user has open: the per-user limit, across workers, and Web Push's
"is this user online?".

In-process the count is a dict. With Redis, each stream is a member of its user's sorted set
``<prefix>:streams:{<user id>}``, scored with an expiry that its worker refreshes; a worker
that dies (kill -9) stops refreshing and its streams stop counting within the TTL.
"""
import logging
import time

import gevent
from flask import current_app

from app.redis_client import ERRORS, Scripts

log = logging.getLogger(__name__)

# KEYS: the user's stream set.  ARGV: stream id, limit, now (ms), ttl (ms).
ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


class QuotaUnavailable(RuntimeError):
    """The stream count cannot be reached, so a new stream cannot be counted."""


class MemoryQuota:
    """Counts the streams of this process only (the in-process app has one)."""

    def __init__(self):
        self._streams = {}  # user id -> stream ids

    def acquire(self, user_id, stream_id, limit):
        """Count a stream; return False when the user already has *limit*."""
        streams = self._streams.setdefault(user_id, set())
        if len(streams) >= limit:
            return False
        streams.add(stream_id)
        return True

    def release(self, user_id, stream_id):
        """Stop counting a stream."""
        streams = self._streams.get(user_id)
        if streams is not None:
            streams.discard(stream_id)
            if not streams:
                del self._streams[user_id]

    def has_streams(self, user_id):
        """Return whether the user has a stream open."""
        return bool(self._streams.get(user_id))

    def close(self):
        """Nothing to give back: the count ends with the process."""


class RedisQuota:
    """Counts streams in Redis, where every process counts its own; one refresher per process.

    :param client: a Redis (or Redis Cluster) client.
    :param prefix: the namespace of the keys.
    :param ttl_seconds: how long a stream counts after its worker last refreshed it.
    """

    def __init__(self, client, prefix, ttl_seconds=30):
        self.client = client
        self.scripts = Scripts(client, {"acquire": ACQUIRE})
        self.prefix = prefix
        self.ttl_ms = int(ttl_seconds * 1000)
        self._mine = {}  # stream id -> user id
        self._released = []  # (user id, stream id) to remove in the next batch
        self._releasing = None
        self._sending = False  # a batch is on its way to Redis
        self._refresher = None

    def key(self, user_id):
        """Return the key of *user_id*'s stream set (one hash tag per user)."""
        return f"{self.prefix}:streams:{{{user_id}}}"

    def acquire(self, user_id, stream_id, limit):
        """Count a stream; return False when the user already has *limit*.

        :raises QuotaUnavailable: when Redis cannot be reached.
        """
        if self._refresher is None:
            self._refresher = gevent.spawn(self._refresh_forever)
        # Releases still waiting for their batch go first: a stream closed here a moment ago
        # must not count against the one opening now.
        released, self._released = self._released, []
        pipe = self.client.pipeline(transaction=False)
        for released_user, released_id in released:
            pipe.zrem(self.key(released_user), released_id)
        self.scripts.run(pipe, "acquire", [self.key(user_id)],
                         [stream_id, limit, int(time.time() * 1000), self.ttl_ms])
        try:
            ok = self.scripts.execute(pipe)[-1]
        except ERRORS as exc:
            self._released.extend(released)
            raise QuotaUnavailable(f"counting streams in Redis failed: {exc}") from exc
        if ok:
            self._mine[stream_id] = user_id
        return bool(ok)

    def has_streams(self, user_id):
        """Return whether any process counts an unexpired stream of the user (one ZCOUNT).

        A stream closed in the last 0.1 s may still count: its release waits for its batch.

        :raises QuotaUnavailable: when Redis cannot be reached.
        """
        now = int(time.time() * 1000)
        try:
            return self.client.zcount(self.key(user_id), f"({now}", "+inf") > 0
        except ERRORS as exc:
            raise QuotaUnavailable(f"reading stream counts in Redis failed: {exc}") from exc

    def release(self, user_id, stream_id):
        """Stop counting a stream, in a batch with the others released within 0.1 s."""
        self._mine.pop(stream_id, None)
        self._released.append((user_id, stream_id))
        if self._releasing is None:
            # Thousands of streams end together on a restart: one round trip, not thousands.
            self._releasing = gevent.spawn_later(0.1, self._release_batch)

    def _release_batch(self):
        released, self._released = self._released, []
        try:
            if released:
                pipe = self.client.pipeline(transaction=False)
                for user_id, stream_id in released:
                    pipe.zrem(self.key(user_id), stream_id)
                self._sending = True
                try:
                    pipe.execute()
                except ERRORS as exc:
                    log.warning("could not release %d stream counts (%s); they expire within "
                                "%d s", len(released), exc, self.ttl_ms // 1000)
        finally:
            self._sending = False
            # Released while this batch was on its way: the next batch. Until this batch is
            # done it is ``_releasing``, so that close() can wait for it.
            self._releasing = gevent.spawn_later(0.1, self._release_batch) \
                if self._released else None

    def close(self):
        """Stop refreshing, and give back at once the streams still waiting for their batch.

        A worker ending its streams on a reload exits within moments of the last one: a
        batch left for later would never run, and one under way would be cut off mid-way
        (waiting for a pooled connection, say), and those streams would count for a whole TTL.
        """
        if self._refresher is not None:
            self._refresher.kill(block=False)
        if self._sending and self._releasing is not gevent.getcurrent():
            self._releasing.join(timeout=5)  # under way: let it finish
        if self._releasing is not None:
            self._releasing.kill(block=False)
            self._releasing = None
        self._release_batch()

    def _refresh_forever(self):
        while True:
            gevent.sleep(self.ttl_ms / 3000)
            if self._mine:
                try:
                    self.refresh()
                except ERRORS as exc:
                    log.warning("refreshing stream counts failed (%s)", exc)

    def refresh(self):
        """Push back the expiry of every stream of this process, in one round trip."""
        expires = int(time.time() * 1000) + self.ttl_ms
        pipe = self.client.pipeline(transaction=False)
        for stream_id, user_id in list(self._mine.items()):
            pipe.zadd(self.key(user_id), {stream_id: expires}, xx=True)
            pipe.pexpire(self.key(user_id), self.ttl_ms)
        pipe.execute()


def init_app(app):
    """Store the stream count in ``app.extensions["stream_quota"]``: in Redis when the app has
    one (``app.extensions["redis"]``, ``REDIS_PREFIX``), in memory otherwise."""
    client = app.extensions["redis"]
    app.extensions["stream_quota"] = MemoryQuota() if client is None else \
        RedisQuota(client, app.config["REDIS_PREFIX"])


def current_quota():
    """Return the current app's stream count."""
    return current_app.extensions["stream_quota"]

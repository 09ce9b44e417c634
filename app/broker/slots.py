"""Open streams per user, counted in Redis so the limit holds across workers and machines.

Each stream is a member of its user's sorted set, scored with an expiry that its worker
refreshes; a worker that dies (kill -9) stops refreshing and its streams stop counting within
the slot TTL.
"""
import logging
import time

import gevent
import redis

log = logging.getLogger(__name__)

_ERRORS = (redis.RedisError, OSError)


class RedisSlots:
    """Per-user stream slots in Redis, refreshed by one greenlet per process."""

    def __init__(self, client, scripts, prefix, ttl_seconds=30):
        self.client = client
        self.scripts = scripts
        self.prefix = prefix
        self.ttl_ms = int(ttl_seconds * 1000)
        self._mine = {}  # stream id -> user id
        self._released = []  # (user id, stream id) to remove in the next batch
        self._releasing = None
        self._greenlet = None

    def _key(self, user_id):
        return f"{self.prefix}:slots:{{{user_id}}}"

    def acquire(self, user_id, stream_id, limit):
        """Count a stream; return False when the user already has *limit*.

        :raises redis.RedisError: when Redis cannot be reached.
        """
        # Releases still waiting for their batch go first: a stream closed here a moment ago
        # must not count against the one opening now.
        released, self._released = self._released, []
        pipe = self.client.pipeline(transaction=False)
        for released_user, released_id in released:
            pipe.zrem(self._key(released_user), released_id)
        self.scripts.run(pipe, "acquire_slot", [self._key(user_id)],
                         [stream_id, limit, int(time.time() * 1000), self.ttl_ms])
        try:
            ok = pipe.execute()[-1]
        except _ERRORS:
            self._released.extend(released)
            raise
        if ok:
            self._mine[stream_id] = user_id
        return bool(ok)

    def has_streams(self, user_id):
        """Return whether the user has a slot that has not expired (one ZCOUNT).

        A stream closed in the last 0.1 s may still count: its release waits for its batch.
        """
        now = int(time.time() * 1000)
        return self.client.zcount(self._key(user_id), f"({now}", "+inf") > 0

    def release(self, user_id, stream_id):
        """Stop counting a stream, in a batch with the others released within 0.1 s."""
        self._mine.pop(stream_id, None)
        self._released.append((user_id, stream_id))
        if self._releasing is None:
            # Thousands of streams end together on a restart: one round trip, not thousands.
            self._releasing = gevent.spawn_later(0.1, self._release_batch)

    def _release_batch(self):
        released, self._released, self._releasing = self._released, [], None
        if not released:
            return
        pipe = self.client.pipeline(transaction=False)
        for user_id, stream_id in released:
            pipe.zrem(self._key(user_id), stream_id)
        try:
            pipe.execute()
        except _ERRORS as exc:
            log.warning("could not release %d stream slots (%s); they expire within %d s",
                        len(released), exc, self.ttl_ms // 1000)

    def start(self):
        """Start refreshing this process's slots."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._refresh_forever)

    def stop(self):
        """Stop refreshing, and give back at once the slots still waiting for their batch.

        A worker ending its streams on a reload exits within moments of the last one: a
        batch left for later would never run, and those slots would count for a whole TTL.
        """
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        if self._releasing is not None:
            self._releasing.kill(block=False)
        self._release_batch()

    def _refresh_forever(self):
        while True:
            gevent.sleep(self.ttl_ms / 3000)
            if self._mine:
                try:
                    self.refresh()
                except _ERRORS as exc:
                    log.warning("refreshing stream slots failed (%s)", exc)

    def refresh(self):
        """Push back the expiry of every stream of this process, in one round trip."""
        expires = int(time.time() * 1000) + self.ttl_ms
        pipe = self.client.pipeline(transaction=False)
        for stream_id, user_id in list(self._mine.items()):
            pipe.zadd(self._key(user_id), {stream_id: expires}, xx=True)
            pipe.pexpire(self._key(user_id), self.ttl_ms)
        pipe.execute()

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
        self._greenlet = None

    def _key(self, user_id):
        return f"{self.prefix}:slots:{{{user_id}}}"

    def acquire(self, user_id, stream_id, limit):
        """Count a stream; return False when the user already has *limit*.

        :raises redis.RedisError: when Redis cannot be reached.
        """
        ok = self.scripts.run(self.client, "acquire_slot", [self._key(user_id)],
                              [stream_id, limit, int(time.time() * 1000), self.ttl_ms])
        if ok:
            self._mine[stream_id] = user_id
        return bool(ok)

    def release(self, user_id, stream_id):
        """Stop counting a stream (it expires by itself if Redis is away now)."""
        self._mine.pop(stream_id, None)
        try:
            self.client.zrem(self._key(user_id), stream_id)
        except _ERRORS:
            log.warning("could not release a stream slot of user %s; it expires by itself", user_id)

    def start(self):
        """Start refreshing this process's slots."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._refresh_forever)

    def stop(self):
        """Stop refreshing."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

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

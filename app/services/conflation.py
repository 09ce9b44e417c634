"""A post's counters on feeds: at most once per window, always ending on the latest value.

A viral post gets hundreds of reactions a second, and each one would cost a copy on every
follower's feed. Its own channel (``post:<id>``) still gets every change; the feeds get the
post's counts at most once per ``FEED_COUNTS_SECONDS`` (default 1 s) per post and counter:

- the first change sends at once, from the request (the leading edge): an isolated change
  reaches the feeds as quickly, and in the same order with other events, as without conflation;
- changes within the window only mark the counter *pending*; at the end of the window the
  process that sent last reads the counts again and sends them (the trailing edge), and goes on
  once per window while changes keep coming. The last value sent is read after the last change
  was committed, so a feed always ends on the final counts.

One process at a time sends a given post's counter: it holds a lease (Redis ``SET NX PX``, or a
dict in-process). A change that finds the lease taken marks the counter pending in the same
atomic step, and the holder's end-of-window step takes the pending mark or gives the lease back
in one atomic step too, so no change falls between them. A worker that stops gracefully sends
what is pending first (:meth:`FeedCounts.close`); one killed while holding a lease delays the
trailing send until the lease expires and a later change of that post claims it.
"""
import logging
import secrets

import gevent
from flask import current_app

from app.redis_client import ERRORS, Scripts

log = logging.getLogger(__name__)

REACTIONS = "reactions"
COMMENTS = "comments"

# KEYS: lease, pending.  ARGV: token, lease ms, pending ms.
# 1: the caller holds the lease and sends now; 0: the holder will send (marked pending).
CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('SET', KEYS[2], 1, 'PX', ARGV[3])
return 0
"""

# KEYS: lease, pending.  ARGV: token, lease ms.
# 1: a change came during the window: send again and keep the lease; 0: the lease is given
# back (or was lost): stop.
SETTLE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
redis.call('DEL', KEYS[1])
return 0
"""


class MemoryLeases:
    """Leases and pending marks of one process (the in-process app has one)."""

    def __init__(self):
        self._pending = {}  # key -> whether a change came after the last send

    def claim(self, key, token):
        """Take the lease of *key*, or mark it pending; return True when taken."""
        if key in self._pending:
            self._pending[key] = True
            return False
        self._pending[key] = False
        return True

    def settle(self, key, token):
        """Return True when *key* is pending (and clear it), else give the lease back."""
        if self._pending.get(key):
            self._pending[key] = False
            return True
        self._pending.pop(key, None)
        return False


class RedisLeases:
    """Leases and pending marks in Redis, shared by every worker of the deployment.

    :param lease_seconds: how long a lease outlives its holder's last step; a killed worker's
        lease expires after it.
    """

    PENDING_SECONDS = 3600  # a pending mark nobody took (its holder died) waits this long

    def __init__(self, client, prefix, lease_seconds):
        self.scripts = Scripts(client, {"claim": CLAIM, "settle": SETTLE})
        self.client = client
        self.prefix = prefix
        self.lease_ms = int(lease_seconds * 1000)

    def _keys(self, key):
        tag = f"{self.prefix}:counts:{{{key}}}"  # one slot on a cluster
        return [f"{tag}:lease", f"{tag}:pending"]

    def claim(self, key, token):
        """Take the lease of *key*, or mark it pending; return True when taken."""
        return bool(self.scripts.run(self.client, "claim", self._keys(key),
                                     [token, self.lease_ms, self.PENDING_SECONDS * 1000]))

    def settle(self, key, token):
        """Return True when *key* is pending (and clear it), else give the lease back."""
        return bool(self.scripts.run(self.client, "settle", self._keys(key),
                                     [token, self.lease_ms]))


class FeedCounts:
    """Sends a post's counters to the feeds, conflated (see the module's docstring).

    :param app: the Flask app (trailing sends run in its context, in background greenlets).
    :param leases: :class:`MemoryLeases` or :class:`RedisLeases`.
    :param window: seconds between two sends of one counter; 0 sends every change.
    """

    def __init__(self, app, leases, window):
        self.app = app
        self.leases = leases
        self.window = window
        self._trails = {}  # key -> (greenlet, token, post_id, send) of the windows held here

    def changed(self, counter, post_id, send):
        """Tell that *counter* of post *post_id* changed and its change is committed.

        ``send(post_id)`` reads the counts and publishes them to the feeds; it runs now when
        this change opens a window, and again at the window's end if more changes came.
        """
        if not self.window:
            send(post_id)
            return
        key, token = f"{counter}:{post_id}", secrets.token_hex(8)
        try:
            leading = self.leases.claim(key, token)
        except ERRORS as exc:
            # Without the lease store, send every change: more events, none lost.
            log.warning("conflating %s of post %s failed (%s); sending it now", counter,
                        post_id, exc)
            send(post_id)
            return
        if leading:
            try:
                send(post_id)
            finally:
                trail = gevent.spawn_later(self.window, self._trail, key, token, post_id, send)
                self._trails[key] = (trail, token, post_id, send)
                trail.link(lambda ended: self._forget(key, ended))

    def _trail(self, key, token, post_id, send):
        """At each window's end: send the latest counts if changes came, else give back."""
        while self._settle(key, token, post_id, send):
            gevent.sleep(self.window)

    def _settle(self, key, token, post_id, send):
        """Send the latest counts if changes came; return False once the lease is given back."""
        try:
            if not self.leases.settle(key, token):
                return False
        except ERRORS as exc:
            log.warning("conflated %s: the lease store failed (%s); the next change of the "
                        "post sends its counts", key, exc)
            return False
        try:
            with self.app.app_context():
                send(post_id)
        except Exception:  # a failed send must not keep the lease forever
            log.exception("sending the conflated %s failed", key)
        return True

    def close(self):
        """Send what is pending now and give the leases back (the worker is stopping)."""
        trails, self._trails = self._trails, {}
        for key, (trail, token, post_id, send) in trails.items():
            trail.kill()
            for _ in range(3):  # another worker's changes may still come: do not wait for them
                if not self._settle(key, token, post_id, send):
                    break

    def _forget(self, key, trail):
        if self._trails.get(key, (None,))[0] is trail:
            del self._trails[key]


def init_app(app):
    """Store the app's :class:`FeedCounts` in ``app.extensions["feed_counts"]``.

    Reads ``FEED_COUNTS_SECONDS``; leases live in Redis when the app has one.
    """
    window = app.config["FEED_COUNTS_SECONDS"]
    client = app.extensions["redis"]
    leases = MemoryLeases() if client is None else \
        RedisLeases(client, app.config["REDIS_PREFIX"], lease_seconds=max(5.0, 3 * window))
    app.extensions["feed_counts"] = FeedCounts(app, leases, window)


def feed_counts():
    """Return the current app's :class:`FeedCounts`."""
    return current_app.extensions["feed_counts"]

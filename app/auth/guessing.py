"""Back-off per username against password guessing from many addresses.

After ``LOGIN_BACKOFF_AFTER`` failed sign-ins for one username (from any address), each
further attempt must wait 1 s, then 2 s, 4 s … up to ``LOGIN_BACKOFF_MAX_SECONDS`` after the
previous one; a refused attempt answers 429 with ``Retry-After`` before any lookup or hash, so
it is cheap and says nothing about whether the account exists. A successful sign-in clears the
count; a quiet day forgets it. The state lives in Redis when ``REDIS_URL`` is set (every worker
and machine shares it), else in this process. ``RATELIMIT_ENABLED=false`` turns it off.

While backing off, an attempt that is let through holds the next window itself: of many
parallel guesses for one username, one is checked per window, not all of them.
"""
import threading
import time

import redis
from flask import current_app, g

from app.errors import RateLimited, Unavailable
from app.redis_client import current_redis

FORGET_SECONDS = 86400
_LOCAL_MAX_NAMES = 10000

# KEYS: the username's hash {f: failures, u: refused until (ms)}.  ARGV: now (ms), free
# failures, longest delay (s).  Returns the ms to wait, or 0 when the attempt may go ahead.
_ATTEMPT = """
local state = redis.call('HMGET', KEYS[1], 'f', 'u')
local failures, now = tonumber(state[1]) or 0, tonumber(ARGV[1])
local refused_until = tonumber(state[2]) or 0
if refused_until > now then return refused_until - now end
local over = failures - tonumber(ARGV[2])
if over >= 0 then
  redis.call('HSET', KEYS[1], 'u', now + 1000 * math.min(2 ^ over, tonumber(ARGV[3])))
end
return 0
"""
# KEYS: the username's hash.  ARGV: now (ms), free failures, longest delay (s), ttl (s).
_FAILED = """
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
local over = failures - tonumber(ARGV[2])
if over >= 0 then
  redis.call('HSET', KEYS[1], 'u', tonumber(ARGV[1]) + 1000 * math.min(2 ^ over, tonumber(ARGV[3])))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return failures
"""


def _delay_ms(over, settings):
    return 1000 * min(2 ** over, settings["LOGIN_BACKOFF_MAX_SECONDS"])


class _LocalStore:
    """The same rules in one process: ``{username: [failures, refused until (ms), last seen]}``."""

    def __init__(self):
        self.names = {}
        self.lock = threading.Lock()

    def attempt(self, name, now, settings):
        with self.lock:
            failures, until, _ = self.names.get(name, (0, 0, 0))
            if until > now:
                return until - now
            over = failures - settings["LOGIN_BACKOFF_AFTER"]
            if over >= 0:
                self.names[name] = [failures, now + _delay_ms(over, settings), now]
            return 0

    def failed(self, name, now, settings):
        with self.lock:
            if name not in self.names and len(self.names) >= _LOCAL_MAX_NAMES:
                self._forget(now)
            failures, until, _ = self.names.pop(name, (0, 0, 0))
            failures += 1
            over = failures - settings["LOGIN_BACKOFF_AFTER"]
            if over >= 0:
                until = now + _delay_ms(over, settings)
            self.names[name] = [failures, until, now]  # re-inserted: the dict is oldest first

    def succeeded(self, name):
        with self.lock:
            self.names.pop(name, None)

    def _forget(self, now):
        """Drop names quiet for a day, then the oldest half if still full (a spray of names)."""
        for name in [n for n, s in self.names.items() if now - s[2] > FORGET_SECONDS * 1000]:
            del self.names[name]
        if len(self.names) >= _LOCAL_MAX_NAMES:
            for name in list(self.names)[:len(self.names) // 2]:
                del self.names[name]


def _local():
    """Return this app's in-process store (each app its own, as each has its own Redis prefix)."""
    return current_app.extensions.setdefault("login_backoff", _LocalStore())


def _redis():
    return current_redis()


def _key(username):
    return f"{current_app.config.get('REDIS_PREFIX', 'rt')}:login:{username.lower()}"


def _enabled():
    return current_app.config["RATELIMIT_ENABLED"]


def _now_ms():
    return int(time.time() * 1000)


def check(username):
    """Let one sign-in attempt for *username* go ahead, or raise.

    :raises RateLimited: 429 with ``Retry-After`` while *username* is backing off.
    """
    if not _enabled():
        return
    settings = current_app.config
    client = _redis()
    if client is None:
        wait_ms = _local().attempt(username.lower(), _now_ms(), settings)
    else:
        try:
            wait_ms = client.eval(_ATTEMPT, 1, _key(username), _now_ms(),
                                  settings["LOGIN_BACKOFF_AFTER"],
                                  settings["LOGIN_BACKOFF_MAX_SECONDS"])
        except (redis.RedisError, OSError) as exc:
            raise Unavailable("cannot sign in now; try again") from exc
    if wait_ms:
        error = RateLimited("too many failed sign-ins for this username; wait and try again",
                            int(wait_ms) / 1000)
        g.retry_after = error.headers["Retry-After"]  # see ratelimit.keep_own_retry_after
        raise error


def failed(username):
    """Count a failed sign-in for *username*, from whichever address it came."""
    if not _enabled():
        return
    settings = current_app.config
    client = _redis()
    if client is None:
        _local().failed(username.lower(), _now_ms(), settings)
        return
    try:
        client.eval(_FAILED, 1, _key(username), _now_ms(), settings["LOGIN_BACKOFF_AFTER"],
                    settings["LOGIN_BACKOFF_MAX_SECONDS"], FORGET_SECONDS)
    except (redis.RedisError, OSError):
        pass  # the answer is 401 whatever happens here; Redis being down is reported elsewhere


def succeeded(username):
    """Forget *username*'s failed sign-ins."""
    if not _enabled():
        return
    client = _redis()
    if client is None:
        _local().succeeded(username.lower())
        return
    try:
        client.delete(_key(username))
    except (redis.RedisError, OSError):
        pass  # a count left behind only slows this user's next typo down

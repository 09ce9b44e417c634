"""A rate limit on what a client sends over an open connection."""
import gevent


class TokenBucket:
    """Allow *rate* messages a second on average, with bursts of *burst*."""

    def __init__(self, rate, burst):
        self.rate, self.capacity, self.tokens = rate, burst, float(burst)
        self.updated = gevent.get_hub().loop.now()

    def take(self):
        """Spend one token; return False when none is left."""
        now = gevent.get_hub().loop.now()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

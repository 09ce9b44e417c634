"""Prometheus metrics, summed over every gunicorn worker.

gunicorn.conf.py points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before forking, so
each worker writes its values to files there and ``/metrics`` adds them up. Without it (tests,
one process) the default registry serves.
"""
import bisect
import os
import time

import gevent
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

STREAMS_OPEN = Gauge("feed_open_connections", "Open streams by transport and channel kind",
                     ["transport", "kind"], multiprocess_mode="livesum")
STREAMS_PARKED = Gauge("feed_parked_streams", "SSE streams waiting without a greenlet "
                       "(app/transports/parking.py)", multiprocess_mode="livesum")
EVENTS_PUBLISHED = Counter("feed_events_published", "Events published, one per channel",
                           ["type"])
EVENTS_COLD = Counter("feed_events_cold", "Events skipped on a cold channel (no stream read it "
                      "within the history window + 7 days), one per channel", ["type"])
EVENTS_DELIVERED = Counter("feed_events_delivered", "Events written to clients", ["transport"])
DELIVERY_LATENCY = Histogram(
    "feed_delivery_latency_seconds", "From publish to the write to a client",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
SLOW_CONSUMERS = Counter("feed_slow_consumers_dropped", "Streams cut for not reading",
                         ["transport"])
PUBLISH_FAILED = Counter("feed_publish_failed", "Committed changes whose event was not published")
REDIS_RECONNECTS = Counter("feed_redis_reconnects", "Pub/sub reconnects to Redis")
PUSHES = Counter("feed_web_pushes", "Web Push work by outcome: sent, gone (subscription deleted), "
                 "failed, online (not pushed: the user had a page open), dropped (queue full)",
                 ["outcome"])


class DeliveryMeter:
    """Counts deliveries and their latency in the process, and adds them to the metrics in bulk.

    In multiprocess mode every ``inc()`` takes a lock, checks the pid (a system call) and
    writes an mmap — three times per delivery for a counter and a histogram, which cost more
    than the delivery itself. The meter counts each delivery into the histogram's buckets here
    and adds the counts to the shared metrics at most ``interval`` seconds later: the same
    numbers, a second late at most.
    """

    def __init__(self, histogram, counter, interval=1.0):
        self.histogram, self.counter, self.interval = histogram, counter, interval
        self._bounds = list(histogram._upper_bounds)
        self._reset()
        self._timer = None
        self._pending = {}  # (transport, message or messages) -> deliveries, see count()
        self._folding = False

    def _reset(self):
        self._buckets = [0] * len(self._bounds)
        self._sum = 0.0
        self._counts = {}

    def add(self, transport, messages, copies=1):
        """Count *copies* deliveries over *transport* of each of *messages* that has a ``ts``."""
        now = time.time() * 1000
        buckets, bounds, total, n = self._buckets, self._bounds, 0.0, 0
        for message in messages:
            ts = message.ts
            if ts is None:
                continue
            latency = (now - ts) / 1000 if now > ts else 0.0
            buckets[bisect.bisect_left(bounds, latency)] += copies
            total += latency
            n += copies
        if n:
            self._sum += total * copies
            self._counts[transport] = self._counts.get(transport, 0) + n
            if self._timer is None:
                self._timer = gevent.spawn_later(self.interval, self.flush)

    def count(self, transport, messages):
        """Count one delivery of *messages* (a non-empty list), added up with the same ones
        counted until the event loop's current callbacks are done.

        The event loop writes one message to thousands of waiting streams in one callback:
        one :meth:`add` per message then, not per stream (the latency is taken a moment
        later, when the writes are done).
        """
        key = (transport, messages[0] if len(messages) == 1 else tuple(messages))
        pending = self._pending
        pending[key] = pending.get(key, 0) + 1
        if not self._folding:
            self._folding = True
            gevent.get_hub().loop.run_callback(self._fold)

    def _fold(self):
        self._folding = False
        pending, self._pending = self._pending, {}
        for (transport, messages), copies in pending.items():
            self.add(transport, messages if isinstance(messages, tuple) else (messages,), copies)

    def flush(self):
        """Add what was counted since the last flush to the shared metrics."""
        self._timer = None
        buckets, total, counts = self._buckets, self._sum, self._counts
        self._reset()
        # prometheus_client has no public "observe n times": its per-bucket values are it.
        for value, count in zip(self.histogram._buckets, buckets):
            if count:
                value.inc(count)
        if total:
            self.histogram._sum.inc(total)
        for transport, count in counts.items():
            self.counter.labels(transport).inc(count)


DELIVERIES = DeliveryMeter(DELIVERY_LATENCY, EVENTS_DELIVERED)


def exposition():
    """Return every metric in Prometheus's text format, summed over workers when forked."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)

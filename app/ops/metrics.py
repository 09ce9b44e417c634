"""Prometheus metrics, summed over every gunicorn worker.

gunicorn.conf.py points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before forking, so
each worker writes its values to files there and ``/metrics`` adds them up. Without it (tests,
one process) the default registry serves.
"""
import os

from prometheus_client import (REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

STREAMS_OPEN = Gauge("feed_open_connections", "Open streams by transport and channel kind",
                     ["transport", "kind"], multiprocess_mode="livesum")
EVENTS_PUBLISHED = Counter("feed_events_published", "Events published, one per channel",
                           ["type"])
EVENTS_DELIVERED = Counter("feed_events_delivered", "Events written to clients", ["transport"])
DELIVERY_LATENCY = Histogram(
    "feed_delivery_latency_seconds", "From publish to the write to a client",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
SLOW_CONSUMERS = Counter("feed_slow_consumers_dropped", "Streams cut for not reading",
                         ["transport"])
PUBLISH_FAILED = Counter("feed_publish_failed", "Committed changes whose event was not published")
REDIS_RECONNECTS = Counter("feed_redis_reconnects", "Pub/sub reconnects to Redis")


def exposition():
    """Return every metric in Prometheus's text format, summed over workers when forked."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)

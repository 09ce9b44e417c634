"""Publish an event once its change is committed; a broker outage never fails the write."""
import logging

from app import metrics
from app.broker import BrokerUnavailable
from app.broker.extension import current_broker

log = logging.getLogger(__name__)


def publish(channels, event, mark=None, once=None):
    """Publish *event* to *channels*; return False when the broker was away (the failure is
    logged and counted, not raised).

    *mark* sets or clears a name in each channel's marks, and *once* makes the publish happen
    at most once (:meth:`app.broker.Broker.publish`).

    Call this only after ``db.session.commit()``: a client that receives the event and asks
    the API must see the change. A lost publish makes the broker restart those channels'
    history once Redis is back, so their clients resync instead of silently missing it.
    """
    if not channels:
        return True
    try:
        ids = current_broker().publish(channels, event, mark, once)
    except BrokerUnavailable as exc:
        metrics.PUBLISH_FAILED.inc()
        log.error("event %s not published to %d channels: %s", event.type, len(channels), exc)
        return False
    cold = ids.count(None) if event.replayable and once is None else 0
    if cold:
        metrics.EVENTS_COLD.labels(event.type).inc(cold)
    metrics.EVENTS_PUBLISHED.labels(event.type).inc(len(channels) - cold)
    return True

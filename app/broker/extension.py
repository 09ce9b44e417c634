"""Attach a broker to the app: Redis when ``REDIS_URL`` is set, in-process otherwise."""
import logging

from flask import current_app

from app.broker.base import BrokerUnavailable
from app.broker.memory import MemoryBroker
from app.errors import Unavailable, error_response

log = logging.getLogger(__name__)


def init_app(app):
    """Create the app's broker and store it in ``app.extensions["broker"]``.

    Uses the app's Redis client (``app.extensions["redis"]``, see :mod:`app.redis_client`)
    and reads ``REDIS_URL``, ``REDIS_PREFIX``, ``REDIS_HEALTH_SECONDS``,
    ``HISTORY_MAX_EVENTS`` and ``HISTORY_MAX_SECONDS``. The Redis broker connects its pub/sub
    listener on first use, so CLI commands that never stream open no pub/sub connection.
    """
    if "broker" in app.extensions:
        raise RuntimeError("A broker is already registered on this app; use app.extensions['broker'].")
    options = {"history_max_events": app.config["HISTORY_MAX_EVENTS"],
               "history_max_seconds": app.config["HISTORY_MAX_SECONDS"]}
    client = app.extensions["redis"]
    if client is not None:
        from app.broker.redis import RedisBroker

        broker = RedisBroker(app.config["REDIS_URL"], client, prefix=app.config["REDIS_PREFIX"],
                             health_seconds=app.config.setdefault("REDIS_HEALTH_SECONDS", 5.0),
                             **options)
    else:
        broker = MemoryBroker(**options)
    app.extensions["broker"] = broker
    app.register_error_handler(BrokerUnavailable, lambda exc: error_response(
        Unavailable(f"the event broker is unavailable: {exc}")))


def current_broker():
    """Return the broker of the current app."""
    return current_app.extensions["broker"]

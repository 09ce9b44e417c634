"""One real server per module for the cross-transport contract tests, and their clients."""
import itertools
import uuid

import pytest

from tests.support.clients import SUBSCRIBERS, RestUser
from tests.support.servers import Deployment

_names = itertools.count()


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, tmp_path_factory):
    """A gunicorn server: one worker on the in-process broker, or two workers on Redis.

    A module's ``SERVER_SETTINGS`` (a dict) adds to the settings it starts with.
    """
    deployment = Deployment(tmp_path_factory.mktemp("contract"), request)
    redis = request.param == "redis"
    [server] = deployment.start(workers=2 if redis else 1,
                                redis_url=request.getfixturevalue("redis_url") if redis else None,
                                RATELIMIT_ENABLED="false", STREAMS_PER_USER=5,
                                **getattr(request.module, "SERVER_SETTINGS", {}))
    yield server
    deployment.stop()


@pytest.fixture
def user(server):
    """Return a function that registers a new user of the server."""
    return lambda: RestUser(server.url, f"u{next(_names)}_{uuid.uuid4().hex[:6]}")


@pytest.fixture
def subscribe(server):
    """Return ``subscribe(transport, path, token, **options)``; every subscriber is closed after."""
    opened = []

    def open_(transport, path, token, **kwargs):
        subscriber = SUBSCRIBERS[transport](server.url, path, token, **kwargs)
        opened.append(subscriber)
        return subscriber

    yield open_
    for subscriber in opened:
        subscriber.close()

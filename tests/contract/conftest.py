"""One real server per module for the cross-transport contract tests."""
import pytest

from tests.support.servers import Deployment


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, tmp_path_factory):
    """A gunicorn server: one worker on the in-process broker, or two workers on Redis."""
    deployment = Deployment(tmp_path_factory.mktemp("contract"), request)
    redis = request.param == "redis"
    [server] = deployment.start(workers=2 if redis else 1,
                                redis_url=request.getfixturevalue("redis_url") if redis else None,
                                RATELIMIT_ENABLED="false", STREAMS_PER_USER=5)
    yield server
    deployment.stop()

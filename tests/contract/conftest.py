"""One real server per module for the cross-transport contract tests."""
import uuid

import pytest

from tests.support.servers import Server, migrate


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, tmp_path_factory):
    """A gunicorn server: one worker on the in-process broker, or two workers on Redis."""
    tmp = tmp_path_factory.mktemp("contract")
    url = f"sqlite:///{tmp / 'feed.db'}"
    migrate(url)
    env = {"DATABASE_URL": url, "RATELIMIT_ENABLED": "false", "STREAMS_PER_USER": "5"}
    workers = 1
    if request.param == "redis":
        env.update(REDIS_URL=request.getfixturevalue("redis_url"),
                   REDIS_PREFIX=f"c{uuid.uuid4().hex[:8]}")
        workers = 2
    server = Server(env, workers=workers, log_dir=tmp).start()
    yield server
    server.stop()

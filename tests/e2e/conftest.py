"""Real deployments on loopback: gunicorn with gevent workers, Redis, SQLite or PostgreSQL."""
import pytest

from tests.support.servers import Deployment


@pytest.fixture
def deploy(tmp_path, request):
    """Start servers: ``deploy(servers=1, workers=1, redis=True, database="sqlite", **env)``.

    Every server of one call shares the database and the Redis prefix. All are stopped after
    the test; their logs are kept in the test's tmp_path.
    """
    deployment = Deployment(tmp_path, request)

    def start(servers=1, workers=1, redis=True, database="sqlite", **env):
        redis_url = request.getfixturevalue("redis_url") if redis else None
        return deployment.start(servers, workers, redis_url, deployment.database(database),
                                **env)

    yield start
    # At once: a graceful stop waits up to a second for gevent's loop to notice, and the
    # tests of graceful stops (test_graceful.py, test_worker_signals.py) signal on their own.
    deployment.stop(graceful=False)

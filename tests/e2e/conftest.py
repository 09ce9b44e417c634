"""Real deployments on loopback: gunicorn with gevent workers, Redis, SQLite or PostgreSQL."""
import uuid

import pytest

from tests.support.servers import Server, migrate


@pytest.fixture
def deploy(tmp_path, request):
    """Start servers: ``deploy(servers=1, workers=1, redis=True, database="sqlite", **env)``.

    Every server of one call shares the database and the Redis prefix. All are stopped after
    the test; their logs are kept in the test's tmp_path.
    """
    started = []

    def start(servers=1, workers=1, redis=True, database="sqlite", **env):
        if database == "sqlite":
            url = f"sqlite:///{tmp_path / f'feed-{uuid.uuid4().hex[:6]}.db'}"
        else:
            url = request.getfixturevalue("fresh_postgres_url")
        migrate(url)
        env = {"DATABASE_URL": url, **{k: str(v) for k, v in env.items()}}
        if redis:
            env["REDIS_URL"] = request.getfixturevalue("redis_url")
            env["REDIS_PREFIX"] = f"e2e{uuid.uuid4().hex[:8]}"
        group = []
        for _ in range(servers):
            server = Server(env, workers=workers, log_dir=tmp_path)
            started.append(server)
            group.append(server.start())
        return group

    yield start
    for server in started:
        server.stop()

"""``/healthz`` says what is down without handing out its error text, which goes to the log."""
import logging

import pytest

from tests.conftest import build_app
from tests.support.redis_server import RedisServer
from tests.support.servers import free_port


def _health(app):
    response = app.test_client().get("/healthz")
    return response.status_code, response.get_json()


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.redis
def test_an_unreachable_redis_is_named_but_its_error_only_logged(sqlite_url, redis_url, caplog):
    redis = RedisServer().start()
    app = build_app(sqlite_url, REDIS_URL=redis.url, REDIS_PREFIX="health")
    try:
        assert _health(app)[0] == 200
        redis.stop()
        with caplog.at_level(logging.WARNING, logger="app.ops.routes"):
            status, body = _health(app)
    finally:
        app.extensions["broker"].close()
        redis.stop()
    assert status == 503
    assert body == {"status": "degraded", "database": "ok", "broker": "unavailable"}
    [record] = [r for r in caplog.records if "broker" in r.getMessage()]
    assert record.levelno == logging.WARNING and str(redis.port) in record.getMessage()


def test_an_unreachable_database_is_named_but_its_error_only_logged(caplog):
    port = free_port()  # nothing listens there
    app = build_app(f"postgresql://postgres@127.0.0.1:{port}/nowhere",
                    DB_POOL_TIMEOUT=1)
    with caplog.at_level(logging.WARNING, logger="app.ops.routes"):
        status, body = _health(app)
    assert status == 503
    assert body == {"status": "degraded", "database": "unavailable", "broker": "ok"}
    [record] = [r for r in caplog.records if "database" in r.getMessage()]
    assert record.levelno == logging.WARNING and str(port) in record.getMessage()

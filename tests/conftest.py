"""Fixtures shared by every test: services, the app on SQLite and PostgreSQL, API helpers."""
# gevent first: the Redis broker's listener and psycopg cooperate only with patched sockets.
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import socket  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

os.environ.setdefault("JWT_SECRET_KEY", "test-secret-" + "k" * 40)

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--require-services", action="store_true",
                     help="fail, instead of skipping, when Redis, PostgreSQL or a browser is "
                          "missing (make test sets it)")


def missing_service(config, message):
    """Skip a test for a missing service, or fail it when services are required."""
    if config.getoption("--require-services"):
        pytest.fail(f"{message} (make test starts it: scripts/ensure-services.sh)")
    pytest.skip(message)


def port_open(port, host="127.0.0.1"):
    """Return whether something listens on *port*."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


# -- services -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_url(pytestconfig):
    """The URL of a running Redis, or skip/fail."""
    if not port_open(6379):
        missing_service(pytestconfig, "Redis is not running on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own, so tests sharing one Redis never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


def postgres_database(config):
    """Create a throwaway PostgreSQL database; yield its URL, then drop it."""
    if not port_open(5432):
        missing_service(config, "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    name = f"feed_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url(pytestconfig):
    """A throwaway PostgreSQL database for the session (tests empty it as they start)."""
    yield from postgres_database(pytestconfig)


@pytest.fixture
def fresh_postgres_url(pytestconfig):
    """A throwaway PostgreSQL database of this test alone (for real servers)."""
    yield from postgres_database(pytestconfig)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    """A SQLite database file for the session."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'feed.db'}"


# -- the app ------------------------------------------------------------------------------------

_migrated = set()


def _prepare_database(app):
    """Migrate the database once per session, then empty every table."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.extensions import db

    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url not in _migrated:
        upgrade(directory=str(ROOT / "migrations"))
        _migrated.add(url)
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    else:
        for table in tables:
            db.session.execute(text(f"DELETE FROM {table}"))
    db.session.commit()


def build_app(database_url, **overrides):
    """Return an app for tests on *database_url*, with short pings and no rate limits."""
    from app import create_app

    # Argon2 at its cheapest: the suite registers hundreds of users (same code, lower cost).
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": None,
              "STREAM_PING_SECONDS": 0.5, "RATELIMIT_ENABLED": False,
              "PASSWORD_HASH_TIME_COST": 1, "PASSWORD_HASH_MEMORY_KIB": 32}
    config.update(overrides)
    return create_app(config)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request):
    """Each test that uses the database runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def app_config():
    """Overrides of the app's configuration; tests override this fixture to change it."""
    return {}


@pytest.fixture
def app(database_url, app_config):
    """The app on a clean database, with the in-process broker."""
    from app.extensions import db

    app = build_app(database_url, **app_config)
    with app.app_context():
        _prepare_database(app)
    yield app
    app.extensions["outbox"].close()  # its pending batch, before the engine goes
    app.extensions["feed_counts"].close()
    app.extensions["broker"].close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


class Api:
    """Register users and call the API as them."""

    def __init__(self, client):
        self.client = client

    def register(self, username, password="password123", display_name=None):
        """Register *username*; return ``(user json, access token, refresh token)``."""
        body = {"username": username, "password": password}
        if display_name:
            body["display_name"] = display_name
        response = self.client.post("/api/auth/register", json=body)
        assert response.status_code == 201, response.get_json()
        data = response.get_json()
        return data["user"], data["access_token"], data["refresh_token"]

    def user(self, username):
        """Register *username* and return a :class:`ApiUser` for them."""
        user, access, refresh = self.register(username)
        return ApiUser(self.client, user, access, refresh)


class ApiUser:
    """One registered user: ``call(method, path, json=...)`` with their token."""

    def __init__(self, client, user, access, refresh):
        self.client, self.user, self.token, self.refresh_token = client, user, access, refresh
        self.id = user["id"]
        self.username = user["username"]

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method, path, **kwargs):
        """Send a request with this user's bearer token."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def post(self, content="hello"):
        """Write a post and return its JSON."""
        response = self.call("POST", "/api/posts", json={"content": content})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def follow(self, other):
        """Follow *other*."""
        assert self.call("PUT", f"/api/users/{other.username}/follow").status_code == 200


@pytest.fixture
def api(client):
    """An :class:`Api` helper on the test client."""
    return Api(client)

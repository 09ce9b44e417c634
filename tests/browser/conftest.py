"""Headless Chromium against a real server: gunicorn with gevent workers, Redis, SQLite.

Playwright's sync API runs in this process although tests/conftest.py monkey-patches it with
gevent: Playwright talks to its driver (a subprocess) through an asyncio loop, and that loop
waits in the ``selectors`` module that gevent patched, so a Playwright wait yields to gevent's
hub instead of blocking it. No separate process or async API is needed.
"""
import os
import uuid
from pathlib import Path

import pytest

from tests.support.servers import Server, migrate

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update",
                 "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
# A test run must not change tracked files: screenshots go to test-artifacts/ (ignored), and to
# the README's docs/screenshots/ only when asked (UPDATE_SCREENSHOTS=1 make test).
SCREENSHOTS = ROOT / ("docs" if os.environ.get("UPDATE_SCREENSHOTS") else "test-artifacts") \
    / "screenshots"


def _missing(config, message):
    if config.getoption("--require-services"):
        pytest.fail(f"{message} (make test installs it: scripts/ensure-services.sh chromium)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser(pytestconfig):
    """One headless Chromium (Debian's) for the whole session."""
    if not os.access(CHROMIUM, os.X_OK):
        _missing(pytestconfig, f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing(pytestconfig, "Playwright is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def server_env(tmp_path_factory, redis_url):
    """Environment of a Redis-backed server on a fresh, migrated SQLite file."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'feed.db'}"
    migrate(database_url)
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "REDIS_PREFIX": f"br{uuid.uuid4().hex[:8]}", "RATELIMIT_ENABLED": "false",
            # Open streams hold a stopping server for its whole grace period: keep it short.
            "GUNICORN_GRACEFUL_TIMEOUT": "3"}


@pytest.fixture(scope="session")
def server(server_env, tmp_path_factory):
    """A server shared by the tests that do not restart it (each uses its own people)."""
    running = Server(server_env, log_dir=tmp_path_factory.mktemp("logs")).start()
    yield running
    running.stop()


@pytest.fixture
def server_overrides():
    """Extra environment for ``own_server``; a test overrides this fixture to change it."""
    return {}


@pytest.fixture
def own_server(server_env, server_overrides, tmp_path):
    """A server of this test's own, on the shared database and Redis, that it may restart."""
    running = Server({**server_env, **server_overrides}, log_dir=tmp_path).start()
    yield running
    running.stop()


@pytest.fixture
def people(browser):
    """Make people, each in a browser context of their own: ``people(server, "alice")``."""
    from tests.browser.people import Person

    made = []

    def make(server, name, **options):
        person = Person(browser, server.url, f"{name}_{uuid.uuid4().hex[:6]}", **options)
        made.append(person)
        return person

    yield make
    for person in made:
        person.close()


@pytest.fixture(scope="session")
def screenshots():
    """The folder the pages' screenshots are saved to (see SCREENSHOTS)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS

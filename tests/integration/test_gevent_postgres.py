"""psycopg 3 cooperates with gevent: a slow query in one greenlet does not stall the others.

Under gunicorn's gevent workers every request is a greenlet of one process; if a database call
blocked the process, one slow query would freeze every request and stream of that worker.
``tests/conftest.py`` monkey-patches first, as ``gunicorn.conf.py`` does for the workers.
"""
import time

import gevent
import pytest
from gevent import monkey
from sqlalchemy import text

from app.extensions import db

pytestmark = pytest.mark.postgres

SLEEP_SECONDS = 1.5


@pytest.fixture
def database_url(postgres_url):
    """PostgreSQL only: this is about psycopg (the ``app`` fixture builds with build_app)."""
    return postgres_url


def _wait_until_running(app, greenlet, pattern, timeout=5.0):
    """Wait until PostgreSQL reports a query matching *pattern* as active."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            if greenlet.dead:
                raise AssertionError("the slow query ran to its end before anything else could "
                                     "run: it blocked the whole process")
            active = db.session.scalar(text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'active' AND query LIKE :pattern "
                "AND pid <> pg_backend_pid()"),
                {"pattern": pattern})
            db.session.rollback()
            if active:
                return
            gevent.sleep(0.01)
    raise AssertionError("the slow query never started")


def test_slow_query_does_not_block_other_requests(app, api):
    assert monkey.is_module_patched("socket") and monkey.is_module_patched("select")
    alice = api.user("alice")  # password hashing is CPU work: done before the clock matters
    post_id = alice.post("before")["id"]
    timeline = {}

    def slow_query():
        with app.app_context():
            with db.engine.connect() as conn:
                timeline["sleep_started"] = time.monotonic()
                conn.execute(text(f"SELECT pg_sleep({SLEEP_SECONDS})"))
                timeline["sleep_finished"] = time.monotonic()

    sleeper = gevent.spawn(slow_query)
    _wait_until_running(app, sleeper, "SELECT pg_sleep(%")

    requests = [("GET", "/api/me", None, 200), ("GET", "/api/feed", None, 200),
                ("POST", "/api/posts", {"content": "during the sleep"}, 201),
                ("PUT", f"/api/posts/{post_id}/reaction", {"type": "like"}, 200),
                ("POST", f"/api/posts/{post_id}/comments", {"content": "also during"}, 201),
                ("GET", f"/api/posts/{post_id}", None, 200)]
    completed = []
    for method, path, body, status in requests:
        with app.app_context():
            response = alice.call(method, path, json=body)
        assert response.status_code == status, (path, response.get_json())
        completed.append(time.monotonic())
    assert "sleep_finished" not in timeline, "requests waited for the sleeping query"

    sleeper.join(timeout=SLEEP_SECONDS + 10)
    assert sleeper.successful(), sleeper.exception
    assert timeline["sleep_finished"] - timeline["sleep_started"] >= SLEEP_SECONDS * 0.95
    assert max(completed) < timeline["sleep_finished"]
    # The requests really ran on the database: the post written during the sleep is there.
    with app.app_context():
        feed = alice.call("GET", "/api/feed").get_json()
    assert feed["posts"][0]["content"] == "during the sleep"
    assert feed["posts"][1]["reaction_counts"]["like"] == 1
    assert feed["posts"][1]["comment_count"] == 1

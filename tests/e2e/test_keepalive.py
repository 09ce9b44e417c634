"""The test clients' shared session against gunicorn's idle keep-alive timeout (1 s here)."""
import uuid

import gevent
import pytest
import requests

from tests.support.clients import RestUser
from tests.support.sessions import SERVER_KEEPALIVE, session

pytestmark = pytest.mark.e2e


def test_a_write_after_an_idle_across_the_keepalive_boundary_never_meets_a_closing_connection(
        deploy):
    [server] = deploy(redis=False, database="postgres")
    assert server.env["GUNICORN_KEEPALIVE"] == str(SERVER_KEEPALIVE)
    author = RestUser(server.url, f"idle_{uuid.uuid4().hex[:6]}")
    headers = {"Authorization": f"Bearer {author.token}"}
    failures, answers = [], []

    def idle_then_write(idle):
        http = session()
        http.get(f"{server.url}/healthz", timeout=10)
        gevent.sleep(idle)
        try:
            answers.append(http.post(f"{server.url}/api/posts", json={"content": f"{idle}"},
                                     headers=headers, timeout=30).status_code)
        except requests.ConnectionError as exc:
            failures.append((round(idle, 3), str(exc)))
        http.close()

    # Fifty connections at once keep the worker busy, so its timer fires a little late or
    # early; their idle times step across the boundary every 4 ms.
    count = 50
    for _ in range(6):
        gevent.joinall([gevent.spawn(idle_then_write, SERVER_KEEPALIVE * (0.9 + 0.2 * i / count))
                        for i in range(count)], raise_error=True)
    assert not failures, failures
    assert answers == [201] * len(answers) and len(answers) == 6 * count

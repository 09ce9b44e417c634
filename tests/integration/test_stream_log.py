"""Each stream's open and close are logged at info: who, transport, channel, how long, why;
never a token."""
import logging
import re

import pytest

from tests.support.streams import open_stream

LOGGER = "app.transports.session"
CLOSE = re.compile(r"stream close: user=(\S+) transport=(\S+) channel=(\S+) stream=\S+ "
                   r"duration=([\d.]+)s reason=(.+)")


@pytest.fixture
def database_url(sqlite_url):
    """Logging does not depend on the database: SQLite only."""
    return sqlite_url


def closes(caplog):
    return [CLOSE.fullmatch(r.getMessage()).groups() for r in caplog.records
            if r.name == LOGGER and r.getMessage().startswith("stream close")]


def test_open_and_close_are_logged_with_the_reason_and_no_token(client, api, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    alice, bob = api.user("alice"), api.user("bob")
    stream = open_stream(client, "/stream/feed", headers=alice.headers)
    stream.next_events()
    opened = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert opened == [f"stream open: user={alice.id} transport=sse channel=feed:{alice.id} "
                      f"stream={opened[0].rsplit('=', 1)[1]}"]
    stream.close()
    assert closes(caplog)[-1][:3] == (alice.id, "sse", f"feed:{alice.id}")
    assert closes(caplog)[-1][4] == "client closed"

    post = alice.post()
    assert alice.call("GET", "/poll/feed", query_string={"timeout": 0}).status_code == 200
    assert closes(caplog)[-1][1] == "poll" and closes(caplog)[-1][4] == "answered"

    # Signed out: the stream ends with token_expired, logged as revoked.
    watching = open_stream(client, f"/stream/post/{post['id']}", query_string={"token": bob.token})
    watching.next_events()
    assert bob.call("POST", "/api/auth/logout").status_code == 200
    watching.until("token_expired")
    watching.close()
    assert closes(caplog)[-1][1:3] == ("sse", f"post:{post['id']}")
    assert closes(caplog)[-1][4] == "revoked"
    assert float(closes(caplog)[-1][3]) >= 0
    text = caplog.text
    assert alice.token not in text and bob.token not in text


class TestExpiry:
    @pytest.fixture
    def app_config(self):
        return {"ACCESS_TOKEN_SECONDS": 1}

    def test_an_expired_token_is_the_reason(self, client, api, caplog):
        caplog.set_level(logging.INFO, logger=LOGGER)
        alice = api.user("alice")
        stream = open_stream(client, "/stream/feed", headers=alice.headers)
        stream.until("token_expired", timeout=10)
        stream.close()
        assert closes(caplog)[-1][4] == "token expired"

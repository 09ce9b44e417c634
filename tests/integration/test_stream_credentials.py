"""A credential the client put in the stream's URL wins over the session cookie."""
import pytest

from tests.support.pageforms import fresh_client, sign_up
from tests.support.streams import open_stream


@pytest.fixture
def database_url(sqlite_url):
    """Only which credential counts is tested here: SQLite only."""
    return sqlite_url


def test_a_pasted_token_or_a_ticket_wins_over_the_cookie(client, api):
    bob = api.user("bob")
    browser = fresh_client(client)
    sign_up(browser)  # the browser holds someone else's session cookie
    ticket = bob.call("POST", "/api/auth/stream-ticket").get_json()["ticket"]
    for query in ({"token": bob.token}, {"ticket": ticket}):
        stream = open_stream(browser, "/stream/feed", query_string=query)
        try:
            assert stream.status == 200, query
            assert stream.next_events()[0]["data"]["channel"] == f"feed:{bob.id}", query
        finally:
            stream.close()
    # The cookie alone still opens the browser's own feed.
    stream = open_stream(browser, "/stream/feed")
    try:
        assert stream.next_events()[0]["data"]["channel"] != f"feed:{bob.id}"
    finally:
        stream.close()

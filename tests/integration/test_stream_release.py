"""Every way a stream request can end gives back the per-user slot it took (or takes none)."""
import pytest
from werkzeug.test import EnvironBuilder

from tests.support.streams import open_stream

LIMIT = 2
UNKNOWN_POST = "00000000-0000-0000-0000-000000000000"
HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.fixture
def app_config():
    return {"STREAMS_PER_USER": LIMIT, "LONGPOLL_MAX_SECONDS": 55}


def assert_all_slots_free(client, user):
    """Open as many SSE streams as the limit allows, then close them."""
    streams = [open_stream(client, "/stream/feed", headers=user.headers) for _ in range(LIMIT)]
    try:
        assert [s.status for s in streams] == [200] * LIMIT
    finally:
        for stream in streams:
            stream.close()


@pytest.mark.parametrize("prefix", ["/stream", "/poll"])
def test_head_answers_what_get_would_and_opens_nothing(client, api, prefix):
    alice = api.user("alice")
    post = alice.post()
    query = "?timeout=50" if prefix == "/poll" else ""  # a HEAD never waits for events
    for path in (f"{prefix}/feed{query}", f"{prefix}/post/{post['id']}{query}"):
        for _ in range(LIMIT + 1):
            head = client.head(path, headers=alice.headers)
            assert head.status_code == 200 and head.data == b""
            assert head.mimetype == ("application/json" if prefix == "/poll"
                                     else "text/event-stream")
            assert head.headers["Cache-Control"] == ("no-store" if prefix == "/poll"
                                                     else "no-cache")
    assert client.head(f"{prefix}/feed").status_code == 401
    assert client.head(f"{prefix}/post/{UNKNOWN_POST}", headers=alice.headers).status_code == 404
    assert_all_slots_free(client, alice)


def test_a_body_closed_before_its_first_chunk_gives_the_slot_back(app, api):
    alice = api.user("alice")
    for _ in range(LIMIT + 1):
        # A WSGI server whose client left before the headers went out closes the body
        # without reading it.
        environ = EnvironBuilder(path="/stream/feed", headers=alice.headers).get_environ()
        body = app(environ, lambda status, headers, exc_info=None: None)
        body.close()
    assert_all_slots_free(app.test_client(), alice)


def test_a_plain_get_to_a_websocket_route_is_426_and_takes_no_slot(client, api):
    alice = api.user("alice")
    post = alice.post()
    for path in ("/ws/feed", f"/ws/post/{post['id']}"):
        for _ in range(LIMIT + 1):
            response = client.get(path, headers=alice.headers)
            assert response.status_code == 426, response.get_json()
            assert response.get_json()["error"]["code"] == "upgrade_required"
            assert response.headers["Upgrade"] == "websocket"
    assert_all_slots_free(client, alice)


@pytest.mark.parametrize("missing,status", [("Sec-WebSocket-Key", 400),
                                            ("Sec-WebSocket-Version", 400)])
def test_an_incomplete_handshake_is_refused_before_a_slot_is_taken(client, api, missing,
                                                                     status):
    alice = api.user("alice")
    headers = {**alice.headers, **{k: v for k, v in HANDSHAKE.items() if k != missing}}
    for _ in range(LIMIT + 1):
        response = client.get("/ws/feed", headers=headers)
        assert response.status_code == status
        assert response.get_json()["error"]["code"] == "bad_request"
    wrong = client.get("/ws/feed", headers={**alice.headers, **HANDSHAKE,
                                            "Sec-WebSocket-Version": "8"})
    assert wrong.status_code == 426 and wrong.headers["Sec-WebSocket-Version"] == "13"
    assert_all_slots_free(client, alice)


def test_a_handshake_that_fails_after_the_session_opened_closes_it(client, api):
    alice = api.user("alice")
    for _ in range(LIMIT + 1):
        # The test client has no socket to upgrade: the WebSocket server fails after the
        # session was opened, as any failure between the checks and the upgrade would.
        response = client.get("/ws/feed", headers={**alice.headers, **HANDSHAKE})
        assert response.status_code == 500
    assert_all_slots_free(client, alice)

"""Every stream gives back its per-user slot: after HEAD, a refused handshake, and at once
when its client closes the connection, long before the next ping would find out."""
import base64
import os
import re
import socket

import pytest
import requests
import websocket

from tests.support.clients import RestUser
from tests.support.waits import wait_until

pytestmark = [pytest.mark.e2e]

# A ping interval far above how long the tests wait: only noticing the hang-up frees the slot.
PING_SECONDS = 15
WITHIN = 5  # seconds; generous, and well below the ping interval


@pytest.fixture(params=["memory", "redis"])
def server(deploy, request):
    """One server with one stream per user: on the in-process broker, or Redis and 2 workers."""
    if request.param == "memory":
        [server] = deploy(redis=False, STREAMS_PER_USER=1, STREAM_PING_SECONDS=PING_SECONDS)
    else:
        [server] = deploy(workers=2, STREAMS_PER_USER=1, STREAM_PING_SECONDS=PING_SECONDS)
    return server


def open_connections(server, transport):
    """Return the open streams of *transport* the server's metrics count."""
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    pattern = r'feed_open_connections\{[^}]*transport="%s"[^}]*\} (\S+)' % transport
    return sum(float(v) for v in re.findall(pattern, text))


def raw_request(server, head):
    """Open a TCP connection and send *head* (the request line and headers) on it."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode())
    return sock


def read_until(sock, marker):
    """Read from *sock* until *marker* arrived; return everything read."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}: {data!r}"
        data += chunk
    return data


def sse_request(server, user, path="/stream/feed"):
    return raw_request(server, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               f"Authorization: Bearer {user.token}\r\n\r\n")


def ws_request(server, user, path="/ws/feed"):
    key = base64.b64encode(os.urandom(16)).decode()
    return raw_request(server, f"GET {path}?token={user.token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")


def opens(server, user, transport):
    """Return whether a new stream of *user* opens now (and close it again)."""
    if transport == "sse":
        response = requests.get(f"{server.url}/stream/feed", stream=True, timeout=10,
                                headers={"Authorization": f"Bearer {user.token}"})
        response.close()
        return response.status_code == 200
    try:
        ws = websocket.create_connection(f"{server.url.replace('http', 'ws')}/ws/feed"
                                         f"?token={user.token}", timeout=10)
    except websocket.WebSocketBadStatusException as exc:
        assert exc.status_code == 429
        return False
    ws.close()
    return True


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_client_that_closes_its_connection_frees_its_slot_at_once(server, transport):
    alice = RestUser(server.url, "alice")
    stream = (sse_request if transport == "sse" else ws_request)(server, alice)
    read_until(stream, b"connection_established")
    assert not opens(server, alice, transport)  # the one slot is taken
    stream.close()  # no close frame, no last read: the TCP connection just ends
    wait_until(lambda: opens(server, alice, transport), timeout=WITHIN, interval=0.1,
               message=f"the slot of a closed {transport} stream was not given back")


def test_head_answers_like_get_and_takes_no_slot(server):
    alice = RestUser(server.url, "alice")
    post = alice.post("hello")
    auth = {"Authorization": f"Bearer {alice.token}"}
    for path in ("/stream/feed", f"/stream/post/{post['id']}", "/poll/feed?timeout=50"):
        for _ in range(3):
            head = requests.head(server.url + path, headers=auth, timeout=10)
            assert head.status_code == 200, path
    assert requests.head(f"{server.url}/stream/feed", timeout=10).status_code == 401
    unknown = "00000000-0000-0000-0000-000000000000"
    assert requests.head(f"{server.url}/stream/post/{unknown}", headers=auth,
                         timeout=10).status_code == 404
    assert opens(server, alice, "sse")


def test_a_websocket_route_without_a_proper_handshake_takes_no_slot(server):
    alice = RestUser(server.url, "alice")
    plain = requests.get(f"{server.url}/ws/feed?token={alice.token}", timeout=10)
    assert plain.status_code == 426 and plain.json()["error"]["code"] == "upgrade_required"
    assert plain.headers["Upgrade"] == "websocket"
    half = {"Upgrade": "websocket", "Connection": "Upgrade"}  # no key, no version
    for _ in range(3):
        response = requests.get(f"{server.url}/ws/feed?token={alice.token}", headers=half,
                                timeout=10)
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
    assert open_connections(server, "ws") == 0
    assert opens(server, alice, "ws")


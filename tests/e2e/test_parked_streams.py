"""SSE streams parked on the event loop (app/transports/parking.py), under real gunicorn.

A parked stream has no greenlet and no gunicorn request while it waits; everything a waiting
stream does must still happen: live events, pings, the token's expiry with the response's last
chunk, a client that leaves giving its slot back at once, and the stop of its worker.
"""
import re
import signal
import socket
import time

import pytest
import requests

from tests.support.clients import SUBSCRIBERS, RestUser, parse_sse
from tests.support.waits import wait_until

pytestmark = [pytest.mark.e2e]


def _gauge(server, name):
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _raw_stream(server, path, token, version="HTTP/1.1"):
    """Open a stream on a plain socket; return it once the response headers are in."""
    host, port = server.url.rsplit("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    sock.sendall(f"GET {path} {version}\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                 f"Accept: text/event-stream\r\n\r\n".encode())
    return sock


def _read_until(sock, marker):
    """Read until *marker* has arrived (headers and chunks come in as many reads as they do)."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before {marker!r}: {data!r}"
        data += chunk
    return data


def _read_to_end(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_waiting_streams_are_parked_and_get_live_events_and_pings(deploy):
    [server] = deploy(workers=1, redis=False, STREAM_PING_SECONDS=0.5)
    alice = RestUser(server.url, "alice")
    readers = [SUBSCRIBERS["sse"](server.url, "feed", alice.token) for _ in range(4)]
    for reader in readers:
        reader.wait_type("connection_established")
    wait_until(lambda: _gauge(server, "feed_parked_streams") == 4, timeout=5)
    post = alice.post("to parked streams")
    for reader in readers:
        [event] = reader.wait_type("new_post")
        assert event["post"]["id"] == post["id"]
        reader.wait_type("ping", count=3, timeout=5)  # pings keep coming while parked
    for reader in readers:
        reader.close()
    # A client that leaves is seen at once (the read watcher), not at the next failed write.
    wait_until(lambda: _gauge(server, "feed_parked_streams") == 0, timeout=5)
    closes = re.findall(r"stream close: .* reason=(.+)", server.log())
    assert closes == ["client closed"] * 4


def test_a_parked_stream_gives_its_slot_back_as_soon_as_its_client_leaves(deploy):
    [server] = deploy(workers=1, redis=False, STREAMS_PER_USER=1, STREAM_PING_SECONDS=60)
    alice = RestUser(server.url, "alice")
    first = SUBSCRIBERS["sse"](server.url, "feed", alice.token)
    first.wait_type("connection_established")
    first.close()
    # With pings a minute apart, only the hangup watcher can free the one slot this fast.
    second = wait_until(lambda: _open_or_none(server, alice.token), timeout=5)
    second.wait_type("connection_established")
    second.close()


def _open_or_none(server, token):
    subscriber = SUBSCRIBERS["sse"](server.url, "feed", token)
    if subscriber.wait_for(lambda s: s.events or s.ended, timeout=5) and subscriber.events:
        return subscriber
    subscriber.close()
    return None


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_a_parked_stream_ends_at_its_tokens_expiry_with_a_complete_response(deploy, version):
    [server] = deploy(workers=1, redis=False, ACCESS_TOKEN_SECONDS=5, STREAM_PING_SECONDS=60)
    alice = RestUser(server.url, "alice")
    sock = _raw_stream(server, "/stream/feed", alice.token, version)
    started = time.monotonic()
    data = _read_to_end(sock)  # the server ends the response and closes the connection
    sock.close()
    assert time.monotonic() - started < 10
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(f"{version} 200".encode())
    assert (b"Transfer-Encoding: chunked" in head) == (version == "HTTP/1.1")
    if version == "HTTP/1.1":  # one last chunk, at the end; HTTP/1.0 ends with the connection
        assert body.endswith(b"\r\n0\r\n\r\n") and body.count(b"\r\n0\r\n\r\n") == 1
    text = body.decode()
    if version == "HTTP/1.1":  # the SSE blocks without the chunks' framing
        text = re.sub(r"(?m)^[0-9A-F]+\r\n", "", text).replace("\r\n", "")
    types = [event["event"] for event in parse_sse(text)]
    assert types[0] == "connection_established" and types[-1] == "token_expired"


def test_streams_over_the_parking_limit_keep_their_greenlet_and_work_alike(deploy):
    [server] = deploy(workers=1, redis=False, GUNICORN_WORKER_CONNECTIONS=3)
    alice = RestUser(server.url, "alice")
    readers = [SUBSCRIBERS["sse"](server.url, "feed", alice.token) for _ in range(5)]
    for reader in readers:
        reader.wait_type("connection_established")
    assert _gauge(server, "feed_parked_streams") == 3
    alice.post("to every stream")
    for reader in readers:
        reader.wait_type("new_post")
        reader.close()


def test_stopping_a_worker_ends_its_parked_streams_with_a_ping_and_the_last_chunk(deploy):
    [server] = deploy(workers=1, redis=False, STREAM_PING_SECONDS=60)
    alice = RestUser(server.url, "alice")
    socks = [_raw_stream(server, "/stream/feed", alice.token) for _ in range(3)]
    for sock in socks:
        _read_until(sock, b"connection_established")
    wait_until(lambda: _gauge(server, "feed_parked_streams") == 3, timeout=5)
    server.signal(signal.SIGTERM)
    for sock in socks:
        rest = _read_to_end(sock)
        sock.close()
        assert b"event: ping" in rest and rest.endswith(b"\r\n0\r\n\r\n")
    server.process.wait(10)

"""SSE streams parked on the event loop (app/transports/parking.py), under real gunicorn.

A parked stream has no greenlet and no gunicorn request while it waits; everything a waiting
stream does must still happen: live events, pings, the token's expiry with the response's last
chunk, a client that leaves giving its slot back at once, and the stop of its worker.
"""
import re
import signal
import time

import pytest
import requests

from tests.support.clients import SUBSCRIBERS, RestUser, parse_sse
from tests.support.rawhttp import Conn, request_bytes
from tests.support.waits import wait_until

pytestmark = [pytest.mark.e2e]


def _gauge(server, name):
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _raw_stream(server, token, version="HTTP/1.1"):
    """Open ``/stream/feed`` on a raw connection; return it with the response's head read."""
    conn = Conn("127.0.0.1", server.port, timeout=15)
    conn.send(request_bytes("GET", "/stream/feed", f"127.0.0.1:{server.port}",
                            {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
                            version=version))
    return (conn, *conn.read_head())


def _open_readers(server, token, count):
    """Open *count* SSE streams of the feed; return them once each has its first event."""
    readers = [SUBSCRIBERS["sse"](server.url, "feed", token) for _ in range(count)]
    for reader in readers:
        reader.wait_type("connection_established")
    return readers


def test_waiting_streams_are_parked_and_get_live_events_and_pings(deploy):
    [server] = deploy(workers=1, redis=False, STREAM_PING_SECONDS=0.5)
    alice = RestUser(server.url, "alice")
    readers = _open_readers(server, alice.token, 4)
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
    conn, status, headers = _raw_stream(server, alice.token, version)
    started = time.monotonic()
    assert status == 200
    assert (headers.get("transfer-encoding") == "chunked") == (version == "HTTP/1.1")
    if version == "HTTP/1.1":  # whole chunks up to the last one, and nothing after it
        body = b"".join(iter(conn.read_chunk, b""))
        assert conn.read_to_end() == b""
    else:  # HTTP/1.0 ends with the connection
        body = conn.read_to_end()
    conn.close()
    assert time.monotonic() - started < 10
    types = [event["event"] for event in parse_sse(body.decode())]
    assert types[0] == "connection_established" and types[-1] == "token_expired"


def test_streams_over_the_parking_limit_keep_their_greenlet_and_work_alike(deploy):
    [server] = deploy(workers=1, redis=False, GUNICORN_WORKER_CONNECTIONS=3)
    alice = RestUser(server.url, "alice")
    readers = _open_readers(server, alice.token, 5)
    assert _gauge(server, "feed_parked_streams") == 3
    alice.post("to every stream")
    for reader in readers:
        reader.wait_type("new_post")
        reader.close()


def test_stopping_a_worker_ends_its_parked_streams_with_a_ping_and_the_last_chunk(deploy):
    [server] = deploy(workers=1, redis=False, STREAM_PING_SECONDS=60)
    alice = RestUser(server.url, "alice")
    conns = [_raw_stream(server, alice.token)[0] for _ in range(3)]
    for conn in conns:
        assert b"connection_established" in conn.read_chunk()
    wait_until(lambda: _gauge(server, "feed_parked_streams") == 3, timeout=5)
    server.signal(signal.SIGTERM)
    for conn in conns:
        rest = b"".join(iter(conn.read_chunk, b""))  # up to the last chunk
        conn.close()
        assert b"event: ping" in rest
    server.process.wait(10)

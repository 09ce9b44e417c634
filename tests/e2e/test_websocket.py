"""WebSocket specifics through real gunicorn gevent workers."""
import base64
import os
import re
import socket

import pytest
import requests
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from tests.support.clients import RestUser, WSSubscriber

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def server(deploy):
    [server] = deploy(redis=False, RATELIMIT_ENABLED="false", ALLOWED_ORIGINS="https://app.example")
    return server


def open_ws(server, path, user, **options):
    subscriber = WSSubscriber(server.url, path, user.token, **options)
    if subscriber.status == 101:
        subscriber.wait_type("connection_established")
    return subscriber


def hostile_origins(port):
    own = f"127.0.0.1:{port}"
    return ["http://evil.com", f"http://{own}.evil.com", f"http://evil.com:{port}", "null",
            f"https://{own}", f"http://127.0.0.1:{port + 1}", f"http://localhost.evil.com:{port}",
            "http://127.0.0.1", "file://", "chrome-extension://abcdef",
            f"http://{own}@evil.com", f"http://evil.com/{own}", f"http://localhost:{port}",
            "HTTP://EVIL.COM", f"http://127.0.0.2:{port}", f"ws://{own}", f"http://[::1]:{port}",
            f"http://0.0.0.0:{port}", f"http://sub.{own}", "https://app.example.evil.com"]


def open_connections(server):
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r'feed_open_connections\{[^}]*transport="ws"[^}]*\} (\S+)',
                                             metrics))


def test_hostile_origins_are_refused_before_the_upgrade(server):
    alice = RestUser(server.url, "alice")
    origins = hostile_origins(server.port)
    assert len(origins) == 20
    for origin in origins:
        refused = WSSubscriber(server.url, "feed", alice.token, origin=origin)
        assert refused.status == 403, origin
    assert open_connections(server) == 0
    for origin in (f"http://127.0.0.1:{server.port}", "https://app.example", None):
        options = {"origin": origin} if origin else {"suppress_origin": True}
        accepted = open_ws(server, "feed", alice, **options)
        assert accepted.status == 101, origin
        accepted.close()


def test_sse_sends_no_permissive_cors_headers(server):
    alice = RestUser(server.url, "alice")
    response = requests.get(f"{server.url}/stream/feed", stream=True, timeout=5,
                            headers={"Authorization": f"Bearer {alice.token}",
                                     "Origin": "http://evil.com"})
    assert "Access-Control-Allow-Origin" not in response.headers
    response.close()


def test_ping_pong_errors_and_the_socket_stays_open(server):
    alice = RestUser(server.url, "alice")
    ws = open_ws(server, "feed", alice)
    ws.send({"type": "ping", "timestamp": 1234567890})
    pong = ws.wait_type("pong")[0]
    assert pong["timestamp"] == 1234567890 and isinstance(pong["server_time"], int)
    ws.send({"type": "pong", "timestamp": 1})  # an answer to the server's ping: no error
    ws.send("{not json")
    ws.send({"type": "launch_missiles"})
    ws.send([1, 2])
    errors = ws.wait_type("error", count=3)
    assert [e["code"] for e in errors] == ["bad_json", "unknown_type", "unknown_type"]
    post = alice.post("still open")
    assert ws.wait_type("new_post")[0]["post"]["id"] == post["id"]
    ws.close()


def test_typing_from_a_client_reaches_everyone_on_the_post_as_its_sender(server):
    alice, bob = RestUser(server.url, "alice"), RestUser(server.url, "bob")
    post = alice.post("type here")
    sender = open_ws(server, f"post/{post['id']}", alice)
    watcher = open_ws(server, f"post/{post['id']}", bob)
    sender.send({"type": "typing", "user": {"id": bob.id, "username": "bob"}})
    typing = watcher.wait_type("typing")[0]
    assert typing["user"]["username"] == "alice" and typing["user"]["id"] == alice.id
    assert typing["post_id"] == post["id"] and "id" not in typing
    feed = open_ws(server, "feed", alice)
    feed.send({"type": "typing"})
    assert feed.wait_type("error")[0]["code"] == "unknown_type"
    for ws in (sender, watcher, feed):
        ws.close()


def test_a_message_over_64_kib_closes_with_1009(server):
    alice = RestUser(server.url, "alice")
    ws = open_ws(server, "feed", alice)
    ws.send({"type": "ping", "pad": "x" * (65 * 1024)})
    ws.wait_for(lambda s: s.ended)
    assert ws.close_code == 1009


def test_a_client_over_its_message_rate_closes_with_1008(server):
    alice = RestUser(server.url, "alice")
    ws = open_ws(server, "feed", alice)
    for _ in range(100):
        try:
            ws.send({"type": "ping"})
        except OSError:
            break
    ws.wait_for(lambda s: s.ended)
    assert ws.close_code == 1008


def test_logout_sends_token_expired_and_closes_with_4401(server):
    alice = RestUser(server.url, "alice")
    ws = open_ws(server, "feed", alice)
    alice.call("POST", "/api/auth/logout")
    ws.wait_type("token_expired")
    ws.wait_for(lambda s: s.ended)
    assert ws.close_code == 4401


def test_an_expiring_token_ends_the_socket_with_4401(deploy):
    [server] = deploy(redis=False, ACCESS_TOKEN_SECONDS=5)
    alice = RestUser(server.url, "alice")
    ws = open_ws(server, "feed", alice)
    ws.wait_type("token_expired", timeout=10)
    ws.wait_for(lambda s: s.ended)
    assert ws.close_code == 4401


def handshake(server, path, token, offer_deflate):
    """Do a raw handshake with wsproto; return (accept event, connection, socket)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    conn = WSConnection(ConnectionType.CLIENT)
    extensions = [PerMessageDeflate()] if offer_deflate else []
    sock.sendall(conn.send(Request(host=f"127.0.0.1:{server.port}",
                                   target=f"/ws/{path}?token={token}", extensions=extensions)))
    while True:
        conn.receive_data(sock.recv(65536))
        for event in conn.events():
            if isinstance(event, AcceptConnection):
                return event, conn, sock
            if isinstance(event, TextMessage):
                raise AssertionError("message before the handshake ended")


def read_text(conn, sock, want):
    texts = []
    while len(texts) < want:
        conn.receive_data(sock.recv(65536))
        texts.extend(e.data for e in conn.events() if isinstance(e, TextMessage))
    return texts


def test_permessage_deflate_is_negotiated_when_offered(server):
    alice = RestUser(server.url, "alice")
    accepted, conn, sock = handshake(server, "feed", alice.token, offer_deflate=True)
    assert any(isinstance(e, PerMessageDeflate) for e in accepted.extensions)
    alice.post("compressible " * 50)
    texts = read_text(conn, sock, 2)
    assert '"connection_established"' in texts[0] and "compressible compressible" in texts[1]
    sock.close()
    plain, conn, sock = handshake(server, "feed", alice.token, offer_deflate=False)
    assert plain.extensions == []
    sock.close()


def test_compression_can_be_switched_off(deploy):
    [server] = deploy(redis=False, WS_COMPRESSION="false")
    alice = RestUser(server.url, "alice")
    accepted, conn, sock = handshake(server, "feed", alice.token, offer_deflate=True)
    assert accepted.extensions == []
    assert '"connection_established"' in read_text(conn, sock, 1)[0]
    sock.close()


def test_a_websocket_that_never_reads_is_cut(deploy):
    [server] = deploy(redis=False, RATELIMIT_ENABLED="false", STREAM_QUEUE_MAX_EVENTS=50)
    alice = RestUser(server.url, "alice")
    post = alice.post("busy")
    healthy = open_ws(server, f"post/{post['id']}", RestUser(server.url, "reader"))
    stuck = socket.create_connection(("127.0.0.1", server.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    stuck.sendall(f"GET /ws/post/{post['id']}?token={RestUser(server.url, 'sloth').token} "
                  f"HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    for i in range(400):
        alice.call("POST", f"/api/posts/{post['id']}/comments", json={"content": f"{i} " + "y" * 1990})
    assert len(healthy.wait_type("new_comment", count=400, timeout=20)) == 400
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    assert re.search(r'feed_slow_consumers_dropped_total\{transport="ws"\} 1\.0', metrics), metrics
    stuck.close()
    healthy.close()

"""Every answer carries the security headers: pages, API, errors, streams and static files."""
import uuid

from tests.support.pageforms import HTML, fresh_client, sign_up
from tests.support.streams import open_stream

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
                    "Cross-Origin-Opener-Policy", "X-Frame-Options")
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def assert_security_headers(response, what):
    for name in SECURITY_HEADERS:
        assert name in response.headers, (what, name, response.status_code)
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, what
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, what
    assert "style-src 'self'" in policy, what
    assert "connect-src 'self' ws://localhost" in policy, what
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_every_kind_of_answer_carries_the_security_headers(client, api):
    alice = api.user("alice")
    post = alice.post("hello")
    browser = fresh_client(client)
    sign_up(browser)
    answers = {
        "page": client.get("/", headers=HTML),
        "page signed in": browser.get(f"/post/{post['id']}", headers=HTML),
        "page 404": browser.get(f"/post/{uuid.uuid4()}", headers=HTML),
        "page 405": client.put("/login", headers=HTML),
        "API": alice.call("GET", "/api/me"),
        "API 401": client.get("/api/me"),
        "API 422": alice.call("POST", "/api/posts", json={"content": ""}),
        "unknown route 404": client.get("/nowhere"),
        "405": client.delete("/api/feed"),
        "413": client.post("/api/posts", data=b"x" * (65 * 1024)),
        "long-poll": alice.call("GET", "/poll/feed", query_string={"timeout": 0}),
        "WebSocket refused": client.get("/ws/feed", headers={**UPGRADE,
                                                              "Origin": "http://evil.example"}),
        "static": client.get("/static/js/main.js"),
        "healthz": client.get("/healthz"),
    }
    statuses = {what: response.status_code for what, response in answers.items()}
    assert (statuses["page 404"], statuses["page 405"], statuses["API 401"], statuses["405"],
            statuses["413"], statuses["WebSocket refused"]) == (404, 405, 401, 405, 413, 403)
    for what, response in answers.items():
        assert_security_headers(response, what)
    stream = open_stream(client, "/stream/feed", headers=alice.headers)
    try:
        assert stream.status == 200
        assert_security_headers(stream.response, "SSE")
        assert stream.next_events()[0]["event"] == "connection_established"
    finally:
        stream.close()


def test_connect_src_names_the_websocket_origin_of_the_page(client):
    policy = client.get("/", base_url="https://feed.example").headers["Content-Security-Policy"]
    assert "connect-src 'self' wss://feed.example;" in policy + ";"


def test_a_route_that_sets_a_header_keeps_it(app, client):
    @app.get("/framed-on-purpose")
    def framed():
        return "", 204, {"X-Frame-Options": "SAMEORIGIN"}

    assert client.get("/framed-on-purpose").headers["X-Frame-Options"] == "SAMEORIGIN"

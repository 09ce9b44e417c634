"""CORS for a front end on another origin: exactly ``ALLOWED_ORIGINS``, errors included, and
the auth cookie only when the operator lets it cross origins (CSRF double-submit still holds)."""
import pytest

from tests.support.pageforms import ORIGIN, access_csrf, fresh_client, sign_up
from tests.support.streams import open_stream

FRONT = "http://front.example:3000"
EVIL = "http://evil.example"


@pytest.fixture
def database_url(sqlite_url):
    """CORS does not depend on the database: SQLite only."""
    return sqlite_url


@pytest.fixture
def app_config():
    return {"ALLOWED_ORIGINS": [FRONT], "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": "memory://", "RATELIMIT_TICKETS": "1/minute"}


def cors_headers(response):
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control")}


def test_preflight_from_an_allowed_origin_names_methods_and_headers(client):
    response = client.options("/api/posts/x", headers={
        "Origin": FRONT, "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == FRONT
    methods = response.headers["Access-Control-Allow-Methods"]
    assert {"PATCH", "PUT", "DELETE", "POST"} <= set(methods.replace(" ", "").split(","))
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key"):
        assert header in allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response.headers
    for name in ("last-event-id", "x-csrf-token"):
        asked = client.options("/stream/feed", headers={
            "Origin": FRONT, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": name})
        assert name in asked.headers["Access-Control-Allow-Headers"].lower()


def test_other_origins_get_no_cors_headers(client, api):
    alice = api.user("alice")
    preflight = client.options("/api/posts", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    answers = [preflight, alice.call("GET", "/api/me", headers={"Origin": EVIL}),
               client.get("/api/me", headers={"Origin": EVIL}),
               alice.call("GET", "/poll/feed", query_string={"timeout": 0},
                          headers={"Origin": EVIL}),
               client.get("/", headers={"Origin": FRONT})]  # pages are not CORS routes
    assert [cors_headers(r) for r in answers] == [{}] * len(answers)


def test_answers_and_errors_carry_cors_and_security_headers_for_an_allowed_origin(client, api):
    alice = api.user("alice")
    origin = {"Origin": FRONT}
    answers = {
        "200": alice.call("GET", "/api/me", headers=origin),
        "401": client.get("/api/me", headers=origin),
        "404": alice.call("GET", "/api/nowhere", headers=origin),
        "422": alice.call("POST", "/api/posts", json={"content": ""}, headers=origin),
        "poll": alice.call("GET", "/poll/feed", query_string={"timeout": 0}, headers=origin),
    }
    alice.call("POST", "/api/auth/stream-ticket", headers=origin)
    answers["429"] = alice.call("POST", "/api/auth/stream-ticket", headers=origin)
    assert [answers[s].status_code for s in ("200", "401", "404", "422", "429")] == \
        [200, 401, 404, 422, 429]
    for what, response in answers.items():
        assert response.headers.get("Access-Control-Allow-Origin") == FRONT, what
        assert "Content-Security-Policy" in response.headers, what
    # A script reads the error envelope and how long to back off.
    assert answers["429"].get_json()["error"]["code"] == "rate_limited"
    assert "Retry-After" in answers["429"].headers["Access-Control-Expose-Headers"]
    stream = open_stream(client, "/stream/feed", headers={**alice.headers, **origin})
    try:
        assert stream.response.headers["Access-Control-Allow-Origin"] == FRONT
        assert stream.next_events()[0]["event"] == "connection_established"
    finally:
        stream.close()


def test_the_auth_cookie_is_not_accepted_from_another_origin(client):
    browser = fresh_client(client)
    sign_up(browser)
    assert browser.get("/api/me").status_code == 200
    assert browser.get("/api/me", headers={"Origin": ORIGIN}).status_code == 200
    for origin in (FRONT, EVIL, "null"):
        refused = browser.get("/api/me", headers={"Origin": origin})
        assert refused.status_code == 401, origin
    assert browser.get("/stream/feed", headers={"Origin": FRONT}).status_code == 401


class TestCredentialsTurnedOn:
    @pytest.fixture
    def app_config(self):
        return {"ALLOWED_ORIGINS": [FRONT], "CORS_ALLOW_CREDENTIALS": True}

    def test_the_cookie_works_from_an_allowed_origin_and_csrf_still_holds(self, client):
        browser = fresh_client(client)
        sign_up(browser)
        me = browser.get("/api/me", headers={"Origin": FRONT})
        assert me.status_code == 200
        assert me.headers["Access-Control-Allow-Credentials"] == "true"
        assert me.headers["Access-Control-Allow-Origin"] == FRONT
        forged = browser.post("/api/posts", json={"content": "hi"}, headers={"Origin": FRONT})
        assert forged.status_code == 403
        assert forged.headers["Access-Control-Allow-Origin"] == FRONT
        sent = browser.post("/api/posts", json={"content": "hi"},
                            headers={"Origin": FRONT, "X-CSRF-TOKEN": access_csrf(browser)})
        assert sent.status_code == 201
        # Still never from an origin outside the list.
        assert browser.get("/api/me", headers={"Origin": EVIL}).status_code == 401

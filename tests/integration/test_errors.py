"""The error envelope on every row of the contract's Errors table, and trailing slashes."""
import logging

import pytest

from tests.support.envelope import error_of


@pytest.fixture
def alice(api):
    return api.user("alice")


def _post_json(user, raw, content_type="application/json"):
    return user.call("POST", "/api/posts", data=raw, content_type=content_type)


# -- 400 bad_json -------------------------------------------------------------------------------

def test_bad_json_bodies(alice):
    bodies = [
        b"content=hello",                      # a form, not JSON
        b"{not json}",
        b'{"content": "unterminated',
        b'["content", "a JSON array"]',
        b'"a JSON string"',
        b"42",
        b"null",
        b'{"content": "\xff\xfe invalid UTF-8"}',
        b"",                                   # empty body
        b"   \n",
        b"[" * 5000,                           # deeply nested
        b'{"a":' * 5000,
        b'{"content": "\\ud800"}',             # a lone surrogate
    ]
    for raw in bodies:
        error_of(_post_json(alice, raw), 400, "bad_json")
    assert alice.call("GET", "/api/feed").get_json()["posts"] == []


def test_bad_json_whatever_the_content_type(alice):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        response = alice.call("POST", "/api/posts", data=b"not json", content_type=content_type)
        error_of(response, 400, "bad_json")


def test_bad_json_on_other_routes(alice, client):
    post_id = alice.post("p")["id"]
    error_of(client.post("/api/auth/register", data=b"[]", content_type="application/json"), 400,
             "bad_json")
    error_of(client.post("/api/auth/login", data=b"", content_type="application/json"), 400,
             "bad_json")
    error_of(alice.call("PATCH", f"/api/posts/{post_id}", data=b"{",
                        content_type="application/json"), 400, "bad_json")
    error_of(alice.call("PUT", f"/api/posts/{post_id}/reaction", data=b"[1]",
                        content_type="application/json"), 400, "bad_json")
    error_of(alice.call("POST", f"/api/posts/{post_id}/comments", data=b"\xff",
                        content_type="application/json"), 400, "bad_json")


# -- 422 validation_error -----------------------------------------------------------------------

def test_validation_error_names_each_field(client):
    response = client.post("/api/auth/register", json={"username": "x", "password": 5})
    error = error_of(response, 422, "validation_error")
    assert set(error["fields"]) == {"username", "password"}
    assert all(isinstance(v, str) and v for v in error["fields"].values())


# -- 401 ----------------------------------------------------------------------------------------

def test_401_codes(alice, client):
    error_of(client.get("/api/feed"), 401, "token_missing")
    error_of(client.get("/api/feed", headers={"Authorization": "Bearer nope"}), 401,
             "token_invalid")
    error_of(client.post("/api/auth/login",
                         json={"username": "alice", "password": "wrongpassword"}),
             401, "invalid_credentials")


# -- 403, 404, 405, 409 -------------------------------------------------------------------------

def test_403_forbidden(api, alice):
    bob = api.user("bob")
    post_id = alice.post("p")["id"]
    error_of(bob.call("PATCH", f"/api/posts/{post_id}", json={"content": "x"}), 403, "forbidden")


def test_unknown_routes_are_json_404(alice, client):
    for path in ("/api/nope", "/api/posts/x/y/z", "/api", "/nope", "/stream/nope"):
        error_of(client.get(path), 404, "not_found")
        error_of(alice.call("GET", path), 404, "not_found")
    error_of(client.post("/api/nope", json={}), 404, "not_found")
    error_of(client.get("/api/nope", headers={"Accept": "text/html"}), 404, "not_found")


def test_wrong_method_is_json_405(alice, client):
    cases = [("DELETE", "/api/me"), ("POST", "/api/feed"), ("GET", "/api/auth/login"),
             ("PUT", "/api/posts"), ("GET", "/api/comments/abc"), ("PATCH", "/api/auth/register")]
    for method, path in cases:
        response = client.open(path, method=method)
        error_of(response, 405, "method_not_allowed")
        assert "Allow" in response.headers
        assert method not in response.headers["Allow"]
    error_of(alice.call("DELETE", "/api/feed"), 405, "method_not_allowed")


def test_409_conflict(alice, client):
    error_of(client.post("/api/auth/register",
                         json={"username": "ALICE", "password": "password123"}),
             409, "conflict")


# -- 413 too_large ------------------------------------------------------------------------------

def test_body_over_64_kib_is_413(alice, client):
    big = b'{"content": "' + b"a" * (70 * 1024) + b'"}'
    error_of(_post_json(alice, big), 413, "too_large")
    error_of(client.post("/api/auth/register", data=big, content_type="application/json"), 413,
             "too_large")
    assert alice.call("GET", "/api/feed").get_json()["posts"] == []


def test_body_just_under_the_limit_is_read(alice):
    raw = b'{"content": "' + b"a" * 4000 + b'", "pad": "' + b"p" * (60 * 1024) + b'"}'
    assert len(raw) < 64 * 1024
    assert _post_json(alice, raw).status_code == 201


def test_chunked_body_over_64_kib_is_413(alice):
    import io

    big = b'{"content": "' + b"a" * (70 * 1024) + b'"}'
    response = alice.call("POST", "/api/posts", input_stream=io.BytesIO(big),
                          content_type="application/json",
                          headers={"Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True})
    error_of(response, 413, "too_large")


# -- 500 internal_error -------------------------------------------------------------------------

def test_unexpected_exception_is_a_bare_500_and_logged(app, client, caplog):
    secret = "secret detail 7f3a"

    def explode():
        raise RuntimeError(secret)

    app.add_url_rule("/api/_test_explode", "test_explode", explode)
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/_test_explode")
    error = error_of(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert secret not in text and "RuntimeError" not in text and "explode" not in text
    assert "fields" not in error
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert logged, "the traceback was not logged"
    assert secret in caplog.text and "Traceback" in caplog.text


# -- trailing slashes ---------------------------------------------------------------------------

def test_trailing_slashes_are_accepted(alice):
    assert alice.call("GET", "/api/me/").status_code == 200
    assert alice.call("GET", "/api/feed/?limit=5").status_code == 200
    created = alice.call("POST", "/api/posts/", json={"content": "slash"})
    assert created.status_code == 201
    post_id = created.get_json()["id"]
    assert alice.call("GET", f"/api/posts/{post_id}/").status_code == 200
    reacted = alice.call("PUT", f"/api/posts/{post_id}/reaction/", json={"type": "like"})
    assert reacted.status_code == 200
    assert alice.call("GET", "/api/users/alice/").get_json()["username"] == "alice"
    response = alice.call("POST", "/api/auth/stream-ticket/")
    assert response.status_code == 200 and "ticket" in response.get_json()

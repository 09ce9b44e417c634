"""``/api/auth``: register, login, refresh, logout, stream tickets, token errors, cookie auth."""
import re
import uuid
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token, decode_token

from tests.support.envelope import error_of

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
USER_KEYS = {"id", "username", "display_name", "created_at", "followers_count", "following_count"}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def assert_auth_body(body, username, display_name):
    assert set(body) == {"user", "access_token", "refresh_token"}
    user = body["user"]
    assert USER_KEYS <= set(user) <= USER_KEYS | {"is_following"}
    assert str(uuid.UUID(user["id"])) == user["id"]
    assert user["username"] == username
    assert user["display_name"] == display_name
    assert ISO_Z.match(user["created_at"])
    assert user["followers_count"] == 0 and user["following_count"] == 0
    assert isinstance(body["access_token"], str) and isinstance(body["refresh_token"], str)
    assert body["access_token"] != body["refresh_token"]


# -- register -----------------------------------------------------------------------------------

def test_register_returns_user_and_working_tokens(client):
    response = client.post("/api/auth/register",
                           json={"username": "Alice_1", "password": "password123",
                                 "display_name": "Alice Liddell"})
    assert response.status_code == 201
    body = response.get_json()
    assert_auth_body(body, "Alice_1", "Alice Liddell")
    me = client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["id"] == body["user"]["id"]
    assert me.get_json()["username"] == "Alice_1"


def test_register_without_display_name_uses_the_username(client):
    response = client.post("/api/auth/register", json={"username": "bob", "password": "p" * 8})
    assert response.status_code == 201
    assert_auth_body(response.get_json(), "bob", "bob")


BAD_USERNAMES = ["ab", "a" * 31, "has space", "dash-ed", "dot.ted", "émile", "bob\n", "", 12345,
                 None]


def test_register_rejects_bad_usernames(client):
    for username in BAD_USERNAMES:
        response = client.post("/api/auth/register",
                               json={"username": username, "password": "password123"})
        error = error_of(response, 422, "validation_error")
        assert "username" in error["fields"], username


def test_register_accepts_username_bounds(client):
    for username in ("abc", "A" * 30, "___", "x_9"):
        response = client.post("/api/auth/register",
                               json={"username": username, "password": "password123"})
        assert response.status_code == 201, (username, response.get_json())


def test_register_rejects_bad_passwords(client):
    for password in ["short77", "p" * 129, 12345678, None]:
        response = client.post("/api/auth/register",
                               json={"username": "carol", "password": password})
        error = error_of(response, 422, "validation_error")
        assert "password" in error["fields"], password
        assert "username" not in error["fields"]


def test_register_password_bounds_and_display_name_rules(client):
    ok_max = client.post("/api/auth/register", json={"username": "pw128", "password": "p" * 128})
    assert ok_max.status_code == 201
    ok_min = client.post("/api/auth/register", json={"username": "pw8", "password": "p" * 8})
    assert ok_min.status_code == 201
    for display_name in ("", "d" * 51, 5, "nul\x00"):
        response = client.post("/api/auth/register", json={"username": "dn_user",
                                                           "password": "p" * 8,
                                                           "display_name": display_name})
        assert "display_name" in error_of(response, 422, "validation_error")["fields"]


def test_register_missing_fields_names_each(client):
    error = error_of(client.post("/api/auth/register", json={}), 422, "validation_error")
    assert {"username", "password"} <= set(error["fields"])


def test_register_taken_username_in_any_case_is_409(client):
    assert client.post("/api/auth/register",
                       json={"username": "dave", "password": "password123"}).status_code == 201
    for taken in ("dave", "DAVE", "Dave", "dAvE"):
        response = client.post("/api/auth/register",
                               json={"username": taken, "password": "password456"})
        error_of(response, 409, "conflict")
    # The original account still signs in with its own password.
    login = client.post("/api/auth/login", json={"username": "dave", "password": "password123"})
    assert login.status_code == 200


# -- login --------------------------------------------------------------------------------------

def test_login_in_any_case_returns_a_new_session(api, client):
    user, access, refresh = api.register("Erin", display_name="Erin E")
    response = client.post("/api/auth/login", json={"username": "eRIN", "password": "password123"})
    assert response.status_code == 200
    body = response.get_json()
    assert_auth_body(body, "Erin", "Erin E")
    assert body["user"]["id"] == user["id"]
    assert body["access_token"] not in (access, refresh)
    me = client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.get_json()["id"] == user["id"]


@pytest.mark.parametrize("username, password", [("frank", "wrongpass1"), ("nobody", "password123")])
def test_login_with_wrong_credentials_is_401(api, client, username, password):
    api.register("frank")
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    error = error_of(response, 401, "invalid_credentials")
    assert "access_token" not in response.get_data(as_text=True)
    assert "fields" not in error


def test_login_with_missing_or_malformed_fields_is_422(client):
    error = error_of(client.post("/api/auth/login", json={"username": "frank"}), 422,
                     "validation_error")
    assert "password" in error["fields"]
    for body in ({"username": 5, "password": "password123"},
                 {"username": "fr\x00nk", "password": "password123"}):
        error = error_of(client.post("/api/auth/login", json=body), 422, "validation_error")
        assert "username" in error["fields"]


# -- refresh, logout, stream tickets ------------------------------------------------------------

def test_refresh_rotates_the_access_and_the_refresh_token(api, client):
    alice = api.user("alice")
    response = client.post("/api/auth/refresh", headers=bearer(alice.refresh_token))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token"}
    assert body["refresh_token"] != alice.refresh_token
    me = client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.get_json()["id"] == alice.id
    # The new refresh token is good for the next refresh, and so on.
    again = client.post("/api/auth/refresh", headers=bearer(body["refresh_token"]))
    assert again.status_code == 200 and set(again.get_json()) == {"access_token", "refresh_token"}


def test_a_reused_refresh_token_revokes_its_whole_session(api, client):
    alice = api.user("alice")
    rotated = client.post("/api/auth/refresh", headers=bearer(alice.refresh_token)).get_json()
    other = client.post("/api/auth/login", json={"username": "alice", "password": "password123"})
    # A copy of the spent token is replayed: refused, and the session ends for both holders.
    error_of(client.post("/api/auth/refresh", headers=bearer(alice.refresh_token)), 401,
             "token_invalid")
    for token in (alice.token, rotated["access_token"]):
        error_of(client.get("/api/me", headers=bearer(token)), 401, "token_invalid")
    error_of(client.post("/api/auth/refresh", headers=bearer(rotated["refresh_token"])), 401,
             "token_invalid")
    # Another sign-in of the same user is untouched.
    assert client.get("/api/me", headers=bearer(other.get_json()["access_token"])).status_code == 200


def test_racing_refreshes_with_one_token_let_exactly_one_through(api, client):
    import gevent

    alice = api.user("alice")
    racers = [gevent.spawn(client.post, "/api/auth/refresh", headers=bearer(alice.refresh_token))
              for _ in range(8)]
    gevent.joinall(racers, timeout=30, raise_error=True)
    assert sorted(r.value.status_code for r in racers) == [200] + [401] * 7


def test_refresh_by_cookie_renews_both_cookies(app, api, client):
    alice = api.user("alice")
    with app.app_context():
        csrf = decode_token(alice.refresh_token)["csrf"]
    names = {key: app.config[key] for key in (
        "JWT_ACCESS_COOKIE_NAME", "JWT_REFRESH_COOKIE_NAME", "JWT_REFRESH_CSRF_COOKIE_NAME")}
    client.set_cookie(names["JWT_REFRESH_COOKIE_NAME"], alice.refresh_token, path="/api/auth/")
    client.set_cookie(names["JWT_REFRESH_CSRF_COOKIE_NAME"], csrf)
    for _ in range(3):  # each answer's cookies carry the next refresh
        response = client.post("/api/auth/refresh", headers={"X-CSRF-TOKEN": csrf})
        assert response.status_code == 200, response.get_json()
        cookies = {c.split("=", 1)[0] for c in response.headers.getlist("Set-Cookie")}
        assert set(names.values()) <= cookies
        csrf = client.get_cookie(names["JWT_REFRESH_CSRF_COOKIE_NAME"]).value
    me = client.get("/api/me")
    assert me.status_code == 200 and me.get_json()["id"] == alice.id


def test_refresh_refuses_an_access_token(api, client):
    alice = api.user("alice")
    error_of(client.post("/api/auth/refresh", headers=bearer(alice.token)), 401, "token_invalid")
    error_of(client.post("/api/auth/refresh"), 401, "token_missing")


def test_access_routes_refuse_a_refresh_token(api, client):
    alice = api.user("alice")
    error_of(client.get("/api/me", headers=bearer(alice.refresh_token)), 401, "token_invalid")


def test_logout_revokes_the_sessions_access_and_refresh_tokens(api, client):
    alice = api.user("alice")
    refreshed = client.post("/api/auth/refresh", headers=bearer(alice.refresh_token))
    refreshed_access = refreshed.get_json()["access_token"]
    other = client.post("/api/auth/login", json={"username": "alice", "password": "password123"})
    other_access = other.get_json()["access_token"]

    response = alice.call("POST", "/api/auth/logout")
    assert response.status_code == 200
    assert response.is_json

    error_of(alice.call("GET", "/api/me"), 401, "token_invalid")
    error_of(client.get("/api/me", headers=bearer(refreshed_access)), 401, "token_invalid")
    error_of(client.post("/api/auth/refresh", headers=bearer(alice.refresh_token)), 401,
             "token_invalid")
    error_of(alice.call("POST", "/api/posts", json={"content": "after logout"}), 401,
             "token_invalid")
    # Another login session of the same user is untouched.
    assert client.get("/api/me", headers=bearer(other_access)).status_code == 200


def test_logout_needs_a_token(client):
    error_of(client.post("/api/auth/logout"), 401, "token_missing")


def test_stream_ticket(api, client):
    alice = api.user("alice")
    response = alice.call("POST", "/api/auth/stream-ticket")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"ticket", "expires_in"}
    assert isinstance(body["ticket"], str) and len(body["ticket"]) >= 16
    assert body["expires_in"] == 30
    second = alice.call("POST", "/api/auth/stream-ticket").get_json()["ticket"]
    assert second != body["ticket"]
    error_of(client.post("/api/auth/stream-ticket"), 401, "token_missing")


# -- token errors -------------------------------------------------------------------------------

def test_missing_token_is_401_token_missing(client):
    error_of(client.get("/api/me"), 401, "token_missing")
    error_of(client.post("/api/posts", json={"content": "hi"}), 401, "token_missing")


def test_garbage_token_is_401_token_invalid(client):
    for token in ("garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"):
        error_of(client.get("/api/me", headers=bearer(token)), 401, "token_invalid")


def test_token_signed_with_another_key_is_invalid(api, client):
    alice = api.user("alice")
    claims = pyjwt.decode(alice.token, options={"verify_signature": False})
    forged = pyjwt.encode(claims, "another-secret-" + "x" * 40, algorithm="HS256")
    error_of(client.get("/api/me", headers=bearer(forged)), 401, "token_invalid")
    unsigned = pyjwt.encode(claims, None, algorithm="none")
    error_of(client.get("/api/me", headers=bearer(unsigned)), 401, "token_invalid")


def test_expired_token_is_401_token_expired(app, api, client):
    alice = api.user("alice")
    with app.app_context():
        expired = create_access_token(identity=alice.id, expires_delta=timedelta(seconds=-1),
                                      additional_claims={"sid": "x"})
    error_of(client.get("/api/me", headers=bearer(expired)), 401, "token_expired")


def test_token_of_a_deleted_user_is_invalid(app, api, client):
    from app.extensions import db
    from app.models import User

    alice = api.user("alice")
    with app.app_context():
        db.session.delete(db.session.get(User, alice.id))
        db.session.commit()
    error_of(alice.call("GET", "/api/me"), 401, "token_invalid")


# -- cookie authentication with CSRF double-submit ----------------------------------------------

def _cookie_client(app, client, token):
    with app.app_context():
        csrf = decode_token(token)["csrf"]
    client.set_cookie(app.config["JWT_ACCESS_COOKIE_NAME"], token)
    client.set_cookie(app.config["JWT_ACCESS_CSRF_COOKIE_NAME"], csrf)
    return csrf


def _post_count(app):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Post

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Post))


def test_cookie_auth_reads_without_csrf(app, api, client):
    alice = api.user("alice")
    _cookie_client(app, client, alice.token)
    response = client.get("/api/me")
    assert response.status_code == 200
    assert response.get_json()["id"] == alice.id


def test_cookie_auth_unsafe_method_needs_the_csrf_header(app, api, client):
    alice = api.user("alice")
    csrf = _cookie_client(app, client, alice.token)

    refused = client.post("/api/posts", json={"content": "no csrf"})
    error_of(refused, 403, "forbidden")
    wrong = client.post("/api/posts", json={"content": "wrong csrf"},
                        headers={"X-CSRF-TOKEN": "not-the-token"})
    error_of(wrong, 403, "forbidden")
    assert _post_count(app) == 0

    accepted = client.post("/api/posts", json={"content": "with csrf"},
                           headers={"X-CSRF-TOKEN": csrf})
    assert accepted.status_code == 201, accepted.get_json()
    assert accepted.get_json()["author"]["id"] == alice.id
    assert _post_count(app) == 1


def test_cookie_auth_after_logout_is_refused(app, api, client):
    alice = api.user("alice")
    csrf = _cookie_client(app, client, alice.token)
    assert client.post("/api/auth/logout", headers={"X-CSRF-TOKEN": csrf}).status_code == 200
    # The logout answer unsets the cookies; put the old one back as a stolen cookie would be.
    _cookie_client(app, client, alice.token)
    error_of(client.get("/api/me"), 401, "token_invalid")

"""Rate limits of the write API (Flask-Limiter) and the typing throttle."""
import re

import pytest

from app.events.channels import post_channel
from app.transports.delivery import Inbox
from tests.support.pageforms import ORIGIN


@pytest.fixture
def app_config():
    return {"RATELIMIT_ENABLED": True, "RATELIMIT_WRITES": "3/minute",
            "RATELIMIT_TYPING": "4/minute", "RATELIMIT_AUTH": "6/minute",
            "RATELIMIT_REFRESH": "2/minute", "RATELIMIT_TICKETS": "2/minute",
            "RATELIMIT_FOLLOWS": "2/minute", "RATELIMIT_LONGPOLL": "3/minute"}


def refused(response):
    """Assert *response* is the contract's 429 with a Retry-After."""
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    return True


def test_writes_over_the_limit_get_429_with_retry_after(api):
    alice, bob = api.user("alice"), api.user("bob")
    post = alice.post("1")
    alice.post("2")
    alice.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "3"})
    refused = alice.call("POST", "/api/posts", json={"content": "4"})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Limits are per user: bob still writes.
    assert bob.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "like"}).status_code == 200


def test_a_refused_write_changes_nothing(api):
    alice = api.user("alice")
    for i in range(3):
        alice.post(str(i))
    assert alice.call("POST", "/api/posts", json={"content": "too many"}).status_code == 429
    feed = alice.call("GET", "/api/feed").get_json()["posts"]
    assert [p["content"] for p in feed] == ["2", "1", "0"]


def test_typing_is_limited_per_user_and_throttled_per_post(app, api):
    alice = api.user("alice")
    post, other = alice.post("a"), alice.post("b")
    inbox = Inbox(post_channel(post["id"]))
    app.extensions["broker"].subscribe(inbox)
    for _ in range(2):
        assert alice.call("POST", f"/api/posts/{post['id']}/typing").status_code == 202
    # Two announcements within two seconds on one post: one event.
    assert [m.type for m in inbox.get(0.2)] == ["typing"]
    assert alice.call("POST", f"/api/posts/{other['id']}/typing").status_code == 202
    assert alice.call("POST", f"/api/posts/{other['id']}/typing").status_code == 202
    refused = alice.call("POST", f"/api/posts/{post['id']}/typing")
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_sign_in_attempts_are_limited_per_address(api, client):
    api.register("alice")
    codes = [client.post("/api/auth/login", json={"username": "alice", "password": "wrong-pass"})
             .status_code for _ in range(5)]
    assert codes == [401] * 5
    # The seventh attempt in a minute (registering was one) is refused, even with the right
    # password.
    refused = client.post("/api/auth/login", json={"username": "alice", "password": "password123"})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"


def _page_post(client, path, **form):
    """Post a page's form the way a browser does: with the csrf_token the form carries."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    return client.post(path, data={"csrf_token": found.group(1) if found else "", **form},
                       headers={"Origin": ORIGIN})


def test_sign_in_and_registration_share_one_budget_per_address(api, client):
    api.register("alice")  # 1
    wrong = {"username": "alice", "password": "wrong-pass"}
    assert client.post("/api/auth/login", json=wrong).status_code == 401  # 2
    assert _page_post(client, "/login", **wrong).status_code == 401  # 3
    assert _page_post(client, "/register", username="bob", password="password123") \
        .status_code == 302  # 4
    assert client.post("/api/auth/register",
                       json={"username": "carol", "password": "password123"}).status_code == 201
    assert client.post("/api/auth/login", json=wrong).status_code == 401  # 6
    # The budget is spent, by whichever route: each of the four now refuses.
    for refused in (client.post("/api/auth/login", json=wrong),
                    client.post("/api/auth/register", json={"username": "dan",
                                                            "password": "password123"}),
                    _page_post(client, "/login", **wrong),
                    _page_post(client, "/register", username="erin", password="password123")):
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    # Another address has its own budget.
    other = client.post("/api/auth/login", json=wrong, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 401


def test_refreshes_are_limited_per_user(api, client):
    alice, bob = api.user("alice"), api.user("bob")
    token = alice.refresh_token
    for _ in range(2):
        response = client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        token = response.get_json()["refresh_token"]
    assert refused(client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {token}"}))
    assert client.post("/api/auth/refresh", headers={
        "Authorization": f"Bearer {bob.refresh_token}"}).status_code == 200


def test_stream_tickets_are_limited_per_user(api):
    alice, bob = api.user("alice"), api.user("bob")
    for _ in range(2):
        assert alice.call("POST", "/api/auth/stream-ticket").status_code == 200
    assert refused(alice.call("POST", "/api/auth/stream-ticket"))
    assert bob.call("POST", "/api/auth/stream-ticket").status_code == 200


def test_follow_and_unfollow_share_one_limit_per_user(api):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    assert alice.call("PUT", "/api/users/bob/follow").status_code == 200
    assert alice.call("DELETE", "/api/users/bob/follow").status_code == 200
    assert refused(alice.call("PUT", "/api/users/carol/follow"))
    assert alice.call("GET", "/api/users/carol").get_json()["followers_count"] == 0
    assert carol.call("PUT", "/api/users/alice/follow").status_code == 200


def test_long_polls_are_limited_per_user_whatever_carries_the_token(api, client):
    alice, bob = api.user("alice"), api.user("bob")
    assert alice.call("GET", "/poll/feed?timeout=0").status_code == 200
    assert client.get(f"/poll/feed?timeout=0&token={alice.token}").status_code == 200
    post = bob.post("hi")
    assert alice.call("GET", f"/poll/post/{post['id']}?timeout=0").status_code == 200
    assert refused(client.get(f"/poll/feed?timeout=0&token={alice.token}"))
    assert refused(alice.call("GET", f"/poll/post/{post['id']}?timeout=0"))
    assert bob.call("GET", "/poll/feed?timeout=0").status_code == 200

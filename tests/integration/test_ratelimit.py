"""Rate limits of the write API (Flask-Limiter) and the typing throttle."""
import pytest

from app.broker.hub import Inbox
from app.events.channels import post_channel


@pytest.fixture
def app_config():
    return {"RATELIMIT_ENABLED": True, "RATELIMIT_WRITES": "3/minute",
            "RATELIMIT_TYPING": "4/minute", "RATELIMIT_AUTH": "6/minute"}


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
             .status_code for _ in range(6)]
    assert codes == [401] * 6
    # The seventh attempt in a minute is refused, even with the right password.
    refused = client.post("/api/auth/login", json={"username": "alice", "password": "password123"})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"

"""Long-poll over the test client and the in-process broker."""
import time

import gevent
import pytest

from tests.support.clients import foreign_event_ids


def poll(user, path="/poll/feed", **params):
    response = user.call("GET", path, query_string=params)
    return response


@pytest.fixture
def app_config():
    return {"LONGPOLL_MAX_SECONDS": 1.0}


def test_without_a_cursor_it_starts_from_now(api):
    alice = api.user("alice")
    alice.post("before")
    response = poll(alice, timeout=0)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["events"] == [] and body["cursor"]
    after = alice.post("after")
    body = poll(alice, cursor=body["cursor"], timeout=1).get_json()
    assert [e["post"]["id"] for e in body["events"]] == [after["id"]]


def test_it_answers_as_soon_as_an_event_exists(api):
    alice = api.user("alice")
    cursor = poll(alice, timeout=0).get_json()["cursor"]
    poster = gevent.spawn_later(0.2, alice.post, "soon")
    started = time.monotonic()
    body = poll(alice, cursor=cursor, timeout=1).get_json()
    poster.join()
    assert [e["type"] for e in body["events"]] == ["new_post"]
    assert time.monotonic() - started < 0.9
    assert body["cursor"] == body["events"][-1]["id"]


def test_after_the_timeout_it_answers_empty_with_the_same_cursor(api):
    alice = api.user("alice")
    cursor = poll(alice, timeout=0).get_json()["cursor"]
    started = time.monotonic()
    body = poll(alice, cursor=cursor, timeout=0.3).get_json()
    assert body == {"events": [], "cursor": cursor}
    assert time.monotonic() - started >= 0.3


def test_timeouts_over_the_maximum_are_capped(api):
    alice = api.user("alice")
    started = time.monotonic()
    assert poll(alice, timeout=500).status_code == 200
    assert time.monotonic() - started < 3  # LONGPOLL_MAX_SECONDS is 1 here


@pytest.mark.parametrize("bad", ["abc", "-1", "nan", "inf"])
def test_a_bad_timeout_is_422(api, bad):
    alice = api.user("alice")
    response = poll(alice, timeout=bad)
    assert response.status_code == 422
    assert "timeout" in response.get_json()["error"]["fields"]


def test_at_most_100_events_per_answer_and_the_chain_has_no_gap(api):
    alice = api.user("alice")
    cursor = poll(alice, timeout=0).get_json()["cursor"]
    posted = [alice.post(f"p{i}")["id"] for i in range(130)]
    first = poll(alice, cursor=cursor, timeout=0).get_json()
    assert len(first["events"]) == 100 and first["cursor"] == first["events"][-1]["id"]
    second = poll(alice, cursor=first["cursor"], timeout=0).get_json()
    assert len(second["events"]) == 30
    received = [e["post"]["id"] for e in first["events"] + second["events"]]
    assert received == posted


def test_an_unknown_cursor_gets_resync_required_and_a_fresh_cursor(api):
    alice = api.user("alice")
    alice.post("x")
    body = poll(alice, cursor="abc-99", timeout=0).get_json()
    assert body["events"] == [{"type": "resync_required"}]
    later = alice.post("y")
    body = poll(alice, cursor=body["cursor"], timeout=1).get_json()
    assert [e["post"]["id"] for e in body["events"]] == [later["id"]]


def test_post_channel_and_refusals(api, client):
    alice = api.user("alice")
    post = alice.post("topic")
    cursor = poll(alice, f"/poll/post/{post['id']}", timeout=0).get_json()["cursor"]
    alice.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "c"})
    body = poll(alice, f"/poll/post/{post['id']}", cursor=cursor, timeout=1).get_json()
    assert [e["type"] for e in body["events"]] == ["new_comment"]
    assert client.get("/poll/feed").status_code == 401
    assert poll(alice, "/poll/post/00000000-0000-0000-0000-000000000000").status_code == 404


def test_logout_during_a_poll_answers_token_expired(api):
    alice = api.user("alice")
    cursor = poll(alice, timeout=0).get_json()["cursor"]
    logout = gevent.spawn_later(0.2, alice.call, "POST", "/api/auth/logout")
    body = poll(alice, cursor=cursor, timeout=1).get_json()
    logout.join()
    assert [e["type"] for e in body["events"]] == ["token_expired"]


def test_a_cursor_that_is_not_ours_starts_afresh_with_resync(api):
    alice = api.user("alice")
    for cursor in foreign_event_ids():
        response = poll(alice, cursor=cursor, timeout=0)
        assert response.status_code == 200, cursor
        body = response.get_json()
        assert body["events"] == [{"type": "resync_required"}]
        assert poll(alice, cursor=body["cursor"], timeout=0).get_json()["events"] == []

"""The same events, the same resume and the same refusals on SSE, WebSocket and long-poll."""
import itertools
import time
import uuid
from urllib.parse import quote

import gevent
import pytest
import requests

from tests.support.clients import foreign_event_ids

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

TRANSPORTS = ["sse", "ws", "poll"]


def _ready(subscriber):
    if subscriber.transport != "poll":
        subscriber.wait_type("connection_established")


def _id_after_one_post(subscribe, transport, reader, author):
    """Open *reader*'s feed, see one post of *author*'s arrive, close; return its last id."""
    first = subscribe(transport, "feed", reader.token)
    _ready(first)
    author.post("seen")
    first.wait_type("new_post")
    first.close()
    return first.last_id


def test_one_change_is_the_identical_object_on_every_transport(user, subscribe):
    alice, bob = user(), user()
    post = alice.post("same everywhere")
    subscribers = [subscribe(t, f"post/{post['id']}", bob.token) for t in TRANSPORTS]
    for subscriber in subscribers:
        _ready(subscriber)
    bob.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "hi\n\"there\""})
    bob.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "wow"})
    received = [s.wait_type("post_reaction")[0] for s in subscribers]
    assert received[0] == received[1] == received[2]
    comments = [s.of_type("new_comment")[0] for s in subscribers]
    assert comments[0] == comments[1] == comments[2]
    assert comments[0]["comment"]["content"] == "hi\n\"there\""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resume_replays_exactly_what_was_missed_then_goes_live(user, subscribe, transport):
    alice = user()
    last_id = _id_after_one_post(subscribe, transport, alice, alice)
    missed = [alice.post(f"missed {i}")["id"] for i in range(3)]
    resumed = subscribe(transport, "feed", alice.token, last_event_id=last_id)
    got = resumed.wait_type("new_post", count=3)
    assert [e["post"]["id"] for e in got] == missed
    live = alice.post("live")["id"]
    got = resumed.wait_type("new_post", count=4)
    assert [e["post"]["id"] for e in got] == missed + [live]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_id_no_longer_held_gets_resync_required(user, subscribe, transport):
    alice = user()
    subscriber = subscribe(transport, "feed", alice.token, last_event_id="0000-5")
    subscriber.wait_type("resync_required")
    alice.post("after resync")
    subscriber.wait_type("new_post")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_resume_id_that_is_not_ours_gets_a_fresh_start(user, subscribe, transport):
    post = user().post("resumed")
    # gunicorn refuses a request line over 4094 bytes (400) before the app sees it.
    for event_id in foreign_event_ids(digits=3_000):
        alice = user()  # a closed stream gives its slot back only when the server notices
        # Each as the query parameter (an HTTP header cannot carry most of them).
        resume = {"ws": {"last_event_id": quote(event_id)},  # the client puts it in the URL
                  "sse": {"params": {"last_event_id": event_id}},
                  "poll": {"last_event_id": event_id}}[transport]
        for path in ("feed", f"post/{post['id']}"):
            subscriber = subscribe(transport, path, alice.token, **resume)
            assert subscriber.status in (200, 101), (event_id, subscriber.status)
            subscriber.wait_type("resync_required")
            subscriber.close()


def test_a_last_event_id_header_that_is_not_ours_gets_a_fresh_start(server, user):
    alice = user()
    # requests sends a str header as Latin-1 ("²" is one byte, as browsers may send it).
    for event_id in ("ab-²", "ab-¹", "ab-" + "9" * 6_000, "１-1".encode()):
        response = requests.get(f"{server.url}/stream/feed", stream=True, timeout=10, headers={
            "Authorization": f"Bearer {alice.token}", "Last-Event-ID": event_id})
        try:
            assert response.status_code == 200, event_id
            lines = response.iter_lines()
            assert any(line == b"event: resync_required" for line in itertools.islice(lines, 20))
        finally:
            response.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_credentials_and_unknown_posts_are_refused_everywhere(user, subscribe, transport):
    alice = user()
    assert subscribe(transport, "feed", "not-a-token").status == 401
    assert subscribe(transport, f"post/{uuid.uuid4()}", alice.token).status == 404


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_stream_limit_counts_every_transport_together(server, user, subscribe, transport):
    alice = user()
    for holder in ("sse", "ws", "sse", "ws", "sse"):
        _ready(subscribe(holder, "feed", alice.token))
    if transport == "poll":
        response = requests.get(f"{server.url}/poll/feed?timeout=0",
                                headers={"Authorization": f"Bearer {alice.token}"}, timeout=5)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) >= 1
    else:
        assert subscribe(transport, "feed", alice.token).status == 429


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trailing_slashes_are_accepted(server, user, subscribe, transport):
    alice = user()
    subscriber = subscribe(transport, "feed/", alice.token)
    assert subscriber.status in (200, 101)
    alice.post("slash")
    subscriber.wait_type("new_post")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_post_id_in_any_case_or_form_names_the_same_channel(user, subscribe, transport):
    alice, bob = user(), user()
    post = alice.post("case")
    spellings = [post["id"].upper(), uuid.UUID(post["id"]).hex.upper()]
    odd = [subscribe(transport, f"post/{spelling}", bob.token) for spelling in spellings]
    listener = subscribe("sse", f"post/{post['id']}", alice.token)
    for subscriber in (*odd, listener):
        _ready(subscriber)
    typist = subscribe("ws", f"post/{spellings[0]}", bob.token)
    _ready(typist)
    typist.send({"type": "typing"})
    [typing] = listener.wait_type("typing")
    assert typing["post_id"] == post["id"] and typing["user"]["id"] == bob.id
    carol = user()
    assert carol.call("POST", f"/api/posts/{spellings[1]}/typing").status_code == 202
    typing = listener.wait_type("typing", count=2)[1]
    assert typing["post_id"] == post["id"] and typing["user"]["id"] == carol.id
    alice.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "wow"})
    for subscriber in odd:
        assert subscriber.wait_type("post_reaction")[0]["post_id"] == post["id"]
        assert subscriber.wait_type("typing")[0]["post_id"] == post["id"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_notification_reaches_the_recipients_feed_and_resumes(user, subscribe, transport):
    alice, bob = user(), user()
    first = subscribe(transport, "feed", alice.token)
    _ready(first)
    bob.follow(alice)
    [event] = first.wait_type("notification")
    assert event["unread"] == 1 and event["id"]
    assert event["notification"]["type"] == "follow"
    assert event["notification"]["actor"]["id"] == bob.id
    last_id = first.last_id
    first.close()
    post = alice.post("react to this")
    bob.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "love"})
    resumed = subscribe(transport, "feed", alice.token, last_event_id=last_id)
    [missed] = resumed.wait_type("notification")
    assert missed["unread"] == 2 and missed["notification"]["post_id"] == post["id"]
    assert [e["type"] for _, e in resumed.events if "id" in e][:3] == [
        "new_post", "post_reaction", "notification"]
    bob.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "live"})
    live = resumed.wait_type("notification", count=2)[1]
    assert live["unread"] == 3 and live["notification"]["type"] == "comment"


def _storm(people, post_id, rounds):
    """Each person changes their reaction to the post *rounds* times, all at once; return the
    number of changes and how long the storm took."""
    kinds = ["like", "love", "haha", "wow"]

    def change(person, offset):
        for n in range(rounds):
            reply = person.call("PUT", f"/api/posts/{post_id}/reaction",
                                json={"type": kinds[(n + offset) % len(kinds)]})
            assert reply.status_code == 200, reply.text

    started = time.monotonic()
    gevent.joinall([gevent.spawn(change, p, i) for i, p in enumerate(people)], raise_error=True)
    return len(people) * rounds, time.monotonic() - started


def test_a_reaction_storm_reaches_the_post_in_full_and_feeds_conflated_to_the_final_counts(
        server, user, subscribe):
    alice, bob = user(), user()
    bob.follow(alice)
    post = alice.post("going viral")
    feeds = [subscribe(t, "feed", bob.token) for t in TRANSPORTS]
    on_post = subscribe("sse", f"post/{post['id']}", bob.token)
    for subscriber in (*feeds, on_post):
        _ready(subscriber)
    changes, took = _storm([user() for _ in range(3)], post["id"], rounds=10)
    final = alice.call("GET", f"/api/posts/{post['id']}").json()["reaction_counts"]
    assert len(on_post.wait_type("post_reaction", count=changes)) == changes
    for feed in feeds:
        # The trailing edge comes within a window (1 s) of the last change.
        feed.wait_for(lambda f: (f.of_type("post_reaction") or [{}])[-1]
                      .get("reaction_data", {}).get("counts") == final)
        sent = len(feed.of_type("post_reaction"))
        # The leading edge, then at most one per window while the storm lasted, then the last.
        assert sent <= took + 2 < changes, (feed.transport, sent, took)
    assert feeds[0].of_type("post_reaction") == feeds[1].of_type("post_reaction") \
        == feeds[2].of_type("post_reaction")


def test_comment_counts_reach_the_feeds_of_the_authors_followers(user, subscribe):
    alice, bob, carol = user(), user(), user()
    bob.follow(alice)
    post = alice.post("say something")
    feeds = [subscribe(t, "feed", bob.token) for t in TRANSPORTS]
    for feed in feeds:
        _ready(feed)
    first = carol.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "one"})
    for feed in feeds:
        [count] = feed.wait_type("comment_count")
        assert count == {**count, "post_id": post["id"], "comment_count": 1} and count["id"]
    carol.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "two"})
    carol.call("DELETE", f"/api/comments/{first.json()['id']}")
    for feed in feeds:
        feed.wait_for(lambda f: f.of_type("comment_count")[-1]["comment_count"] == 1
                      and len(f.of_type("comment_count")) >= 2)
        assert all(e["post_id"] == post["id"] for e in feed.of_type("comment_count"))

"""feedclient against real gunicorn+gevent servers: events, resume after a restart, resync,
token refresh, on every transport."""
import uuid

import pytest

from app.smoke import Watcher
from feedclient import Backoff, FeedClient

pytestmark = pytest.mark.e2e
TRANSPORTS = ["sse", "ws", "poll"]
# The servers ping every second (tests/support/servers.py): notice a dead connection fast,
# and retry soon, so a test does not wait out a production backoff.
FAST = {"ping_seconds": 1, "poll_timeout": 2, "backoff": Backoff(base=0.1, cap=1)}


def user(url, name="u"):
    """Register a fresh user; return its client."""
    client = FeedClient(url)
    client.register(f"{name}_{uuid.uuid4().hex[:8]}", "password123")
    return client


def watch(subscription, name="stream"):
    """Read *subscription* in a greenlet; return the watcher once it is connected."""
    watcher = Watcher(subscription, name)
    watcher.expect(lambda e: e["type"] == "connection_established", "connection", 10)
    return watcher


def post_ids(watcher):
    return [e["post"]["id"] for _, e in watcher.events if e["type"] == "new_post"]


@pytest.mark.parametrize("use_ticket", [True, False])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_iterator_yields_feed_and_post_events(deploy, transport, use_ticket):
    [server] = deploy(redis=False)
    alice = user(server.url)
    with alice.follow_feed(transport, use_ticket=use_ticket, **FAST) as feed:
        assert next(feed)["type"] == "connection_established"
        post = alice.create_post("hello")
        event = next(feed)
        assert (event["type"], event["post"]["id"]) == ("new_post", post["id"])
        assert event["id"] and event["ts"] and feed.last_event_id == event["id"]
        with alice.follow_post(post["id"], transport, use_ticket=use_ticket, **FAST) as channel:
            assert next(channel)["type"] == "connection_established"
            comment = alice.comment(post["id"], "first")
            event = next(channel)
            assert (event["type"], event["comment"]["id"]) == ("new_comment", comment["id"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_restart_is_resumed_without_gap_or_duplicate(deploy, transport):
    first, second = deploy(servers=2, redis=True)
    alice = user(first.url)
    subscription = alice.follow_feed(transport, **FAST)
    feed = watch(subscription, "feed")
    before = alice.create_post("before")["id"]
    feed.expect(lambda e: e["type"] == "new_post", "new_post", 10)
    first.stop()
    # While its server is down, the same user writes through the other one.
    elsewhere = FeedClient(second.url, alice.access_token, alice.refresh_token)
    missed = [elsewhere.create_post(f"missed {i}")["id"] for i in range(3)]
    first.start()
    feed.expect(lambda e: post_ids(feed)[-1:] == missed[-1:], "the missed posts", 30)
    after = alice.create_post("after")["id"]
    feed.expect(lambda e: e["type"] == "new_post" and e["post"]["id"] == after, "new_post", 10)
    assert post_ids(feed) == [before, *missed, after]
    assert subscription.reconnects >= 1
    feed.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resync_required_is_yielded_then_events_go_on(deploy, transport):
    [server] = deploy(redis=False, HISTORY_MAX_EVENTS=2)
    alice = user(server.url)
    with alice.follow_feed(transport, **FAST) as feed:
        next(feed)
        alice.create_post("seen")
        last = next(feed)["id"]
    for i in range(4):  # more than the channel keeps
        alice.create_post(f"gone {i}")
    with alice.follow_feed(transport, last_event_id=last, **FAST) as feed:
        types = [next(feed)["type"] for _ in range(2)]
        assert "resync_required" in types, types
        live = alice.create_post("live")["id"]
        event = next(feed)
        while event["type"] != "new_post":
            event = next(feed)
        assert event["post"]["id"] == live


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_token_expired_refreshes_and_the_stream_goes_on(deploy, transport):
    [server] = deploy(redis=False, ACCESS_TOKEN_SECONDS=5)
    alice = user(server.url)
    subscription = alice.follow_feed(transport, **FAST)
    feed = watch(subscription, "feed")
    posted = [alice.create_post("before")["id"]]
    # Twice: refresh tokens rotate, so the second refresh needs the token the first one got.
    feed.expect(lambda e: subscription.refreshes >= 2, "two refreshes", 30)
    posted.append(alice.create_post("after")["id"])
    feed.expect(lambda e: post_ids(feed) == posted, "both posts", 10)
    assert feed.error is None
    feed.close()

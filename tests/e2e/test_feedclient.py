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


def test_a_server_restart_is_resumed_without_gap_or_duplicate_on_every_transport(deploy):
    # The three transports through one restart, one user each.
    first, second = deploy(servers=2, redis=True)
    users = {transport: user(first.url, transport) for transport in TRANSPORTS}
    subscriptions = {t: users[t].follow_feed(t, **FAST) for t in TRANSPORTS}
    feeds = {t: watch(subscriptions[t], f"{t} feed") for t in TRANSPORTS}
    before = {t: users[t].create_post("before")["id"] for t in TRANSPORTS}
    for t in TRANSPORTS:
        feeds[t].expect(lambda e: e["type"] == "new_post", f"new_post ({t})", 10)
    first.stop()
    # While their server is down, the same users write through the other one.
    missed = {}
    for t, alice in users.items():
        elsewhere = FeedClient(second.url, alice.access_token, alice.refresh_token)
        missed[t] = [elsewhere.create_post(f"missed {i}")["id"] for i in range(3)]
    first.start()
    for t in TRANSPORTS:
        feeds[t].expect(lambda e, f=feeds[t], last=missed[t][-1:]: post_ids(f)[-1:] == last,
                        f"the missed posts ({t})", 30)
    after = {t: users[t].create_post("after")["id"] for t in TRANSPORTS}
    for t in TRANSPORTS:
        feeds[t].expect(lambda e, a=after[t]: e["type"] == "new_post" and e["post"]["id"] == a,
                        f"new_post ({t})", 10)
        assert post_ids(feeds[t]) == [before[t], *missed[t], after[t]], t
        assert subscriptions[t].reconnects >= 1, t
        feeds[t].close()


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


def test_token_expired_refreshes_and_the_stream_goes_on_on_every_transport(deploy):
    # The three transports side by side, one user each: the tokens expire together.
    [server] = deploy(redis=False, ACCESS_TOKEN_SECONDS=5)
    users = {transport: user(server.url, transport) for transport in TRANSPORTS}
    subscriptions = {t: users[t].follow_feed(t, **FAST) for t in TRANSPORTS}
    feeds = {t: watch(subscriptions[t], f"{t} feed") for t in TRANSPORTS}
    posted = {t: [users[t].create_post("before")["id"]] for t in TRANSPORTS}
    # Twice: refresh tokens rotate, so the second refresh needs the token the first one got.
    for t in TRANSPORTS:
        feeds[t].expect(lambda e, s=subscriptions[t]: s.refreshes >= 2, f"two refreshes ({t})",
                        30)
    for t in TRANSPORTS:
        posted[t].append(users[t].create_post("after")["id"])
    for t in TRANSPORTS:
        feeds[t].expect(lambda e, f=feeds[t], want=posted[t]: post_ids(f) == want,
                        f"both posts ({t})", 10)
        assert feeds[t].error is None, t
        feeds[t].close()

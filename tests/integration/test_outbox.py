"""The outbox: an event committed and never published, because its process stopped in between,
is taken over by a relay once its lease runs out; nothing is lost and nothing doubled.

"Stopped" here is a request whose send never happens (the process died right after the
commit) or that published and died before forgetting the row; tests/chaos kills a real worker.
"""
from datetime import timedelta

import gevent
import pytest
from sqlalchemy import func, select, update

from app.events.channels import LARGE, feed_channel, post_channel
from app.events.wire import Position
from app.extensions import db
from app.models import OutboxEntry, User
from app.models.base import utcnow
from app.services import outbox
from app.services.outbox import Relay
from app.transports.delivery import Inbox


@pytest.fixture
def app_config():
    return {"LARGE_AUTHOR_FOLLOWERS": 3}


def rows(app):
    """Return the outbox's rows, once the published ones' batch is deleted."""
    app.extensions["outbox"].flush()
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(OutboxEntry))
        db.session.remove()
        return count


def listening(app, channel):
    """Open *channel* as a stream does (its head read: it is warm) and return its inbox."""
    broker = app.extensions["broker"]
    broker.read(channel)
    inbox = Inbox(channel)
    broker.subscribe(inbox)
    return inbox


def head(app, channel):
    return app.extensions["broker"].read(channel).head


def history(app, channel):
    """Return the JSON of every event *channel* holds in its current epoch."""
    broker = app.extensions["broker"]
    return [m.data for m in broker.read(channel, Position(head(app, channel).epoch, 0)).messages]


def stopped_after_commit(monkeypatch):
    """Make every write's process 'stop' between its commit and its publish."""
    monkeypatch.setattr(outbox, "send", lambda staged, payload, publish=None: None)


def stopped_after_publish(monkeypatch):
    """Make every write's process 'stop' after its publish, before it forgets the row."""
    real = outbox._publish
    monkeypatch.setattr(outbox, "send", lambda staged, payload, publish=None: publish() if publish
                        else real(staged, outbox.schema.Event(staged.event_type, payload)))


def lease_over(app):
    """Make every row's lease run out now (as ``OUTBOX_LEASE_SECONDS`` later would); the
    published ones' batch is deleted first, as it would be by then."""
    app.extensions["outbox"].flush()
    with app.app_context():
        db.session.execute(update(OutboxEntry).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()


def relay_after_lease(app):
    lease_over(app)
    return app.extensions["outbox"].run_once()


def test_every_write_publishes_and_leaves_the_outbox_empty(app, api):
    alice, bob = api.user("alice"), api.user("bob")
    bob.call("PUT", "/api/users/alice/follow")
    feed = listening(app, feed_channel(bob.id))
    post_id = alice.post("hello")["id"]
    alice.call("PATCH", f"/api/posts/{post_id}", json={"content": "hello again"})
    comment = bob.call("POST", f"/api/posts/{post_id}/comments", json={"content": "hi"})
    bob.call("DELETE", f"/api/comments/{comment.get_json()['id']}")
    alice.call("DELETE", f"/api/posts/{post_id}")
    types = [m.type for m in feed.get(1)]
    assert types[:2] == ["new_post", "post_updated"] and types[-1] == "post_deleted", types
    assert rows(app) == 0
    assert relay_after_lease(app) == 0


@pytest.mark.parametrize("stop", [stopped_after_commit, stopped_after_publish])
def test_a_post_left_behind_restarts_the_warm_feeds_and_leaves_cold_ones_cold(
        app, api, monkeypatch, stop):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    for reader in (bob, carol):
        reader.call("PUT", "/api/users/alice/follow")
    bob_feed = listening(app, feed_channel(bob.id))  # carol's feed nobody opened: cold
    before = head(app, feed_channel(bob.id))
    stop(monkeypatch)
    assert alice.call("POST", "/api/posts", json={"content": "lost?"}).status_code == 201
    assert len(bob_feed.take()) == (stop is stopped_after_publish) and rows(app) == 1
    assert app.extensions["outbox"].run_once() == 0  # still leased to its request
    assert relay_after_lease(app) == 1
    after = head(app, feed_channel(bob.id))
    # A new epoch: bob's stream says resync_required, and his client reads the post over REST.
    assert after.epoch != before.epoch and after.seq == 0
    assert app.extensions["broker"].publish([feed_channel(carol.id)],
                                            outbox.schema.Event("new_post", {})) == [None]
    assert rows(app) == 0 and relay_after_lease(app) == 0


def test_a_comment_left_unpublished_restarts_its_posts_channel(app, api, monkeypatch):
    alice = api.user("alice")
    post_id = alice.post("p")["id"]
    channel = post_channel(post_id)
    listening(app, channel)
    before = head(app, channel)
    stopped_after_commit(monkeypatch)
    alice.call("POST", f"/api/posts/{post_id}/comments", json={"content": "c"})
    assert relay_after_lease(app) == 1
    assert head(app, channel).epoch != before.epoch


@pytest.mark.parametrize("stop", [stopped_after_commit, stopped_after_publish])
def test_a_large_authors_post_left_behind_reaches_the_large_channel_exactly_once(
        app, api, monkeypatch, stop):
    dave, bob = api.user("dave"), api.user("bob")
    for reader in (bob, api.user("carol"), api.user("erin")):  # three: large
        reader.call("PUT", "/api/users/dave/follow")
    with app.app_context():
        assert db.session.scalar(select(User.large_author).where(User.id == dave.id))
    listening(app, LARGE)
    bob_feed = listening(app, feed_channel(bob.id))
    before = head(app, feed_channel(bob.id))
    stop(monkeypatch)
    dave.post("to many")
    assert relay_after_lease(app) == 1
    events = [e for e in history(app, LARGE) if b"to many" in e]
    assert len(events) == 1, events
    # The large channel carries it to bob's stream: his feed (which it never reaches) goes on.
    assert head(app, feed_channel(bob.id)) == before and bob_feed.get(0.1) == []


def test_on_the_in_process_broker_rows_of_an_earlier_process_are_only_deleted(
        app, api, monkeypatch):
    alice, bob = api.user("alice"), api.user("bob")
    bob.call("PUT", "/api/users/alice/follow")
    listening(app, feed_channel(bob.id))
    before = head(app, feed_channel(bob.id))
    stopped_after_commit(monkeypatch)
    alice.post("from before the restart")
    lease_over(app)
    # A relay of a process started after the row: the history it concerned died with the
    # process that wrote it, and every stream of that process resyncs on its next open.
    assert Relay(app).run_once() == 1
    assert head(app, feed_channel(bob.id)) == before and rows(app) == 0


def test_two_relays_at_once_take_each_row_over_once(app, api, monkeypatch):
    alice, bob = api.user("alice"), api.user("bob")
    bob.call("PUT", "/api/users/alice/follow")
    listening(app, feed_channel(bob.id))
    stopped_after_commit(monkeypatch)
    for n in range(5):
        alice.post(f"post {n}")
    lease_over(app)
    relays = [app.extensions["outbox"], Relay(app)]
    relays[1].started_at = relays[0].started_at
    jobs = [gevent.spawn(relay.run_once) for relay in relays]
    gevent.joinall(jobs, raise_error=True)
    assert sum(job.value for job in jobs) == 5 and rows(app) == 0


def test_a_publish_that_fails_leaves_the_event_to_the_relay_and_the_write_succeeds(
        app, api, monkeypatch):
    alice, bob = api.user("alice"), api.user("bob")
    bob.call("PUT", "/api/users/alice/follow")
    listening(app, feed_channel(bob.id))
    before = head(app, feed_channel(bob.id))
    monkeypatch.setattr(outbox.audience, "publish_to_followers", lambda *a, **k: False)
    assert alice.call("POST", "/api/posts", json={"content": "broker away"}).status_code == 201
    monkeypatch.undo()
    assert rows(app) == 1  # kept: the broker was away
    assert relay_after_lease(app) == 1
    assert head(app, feed_channel(bob.id)).epoch != before.epoch and rows(app) == 0


def test_a_request_whose_lease_ran_out_leaves_its_event_to_the_relay(app, api, monkeypatch):
    alice, bob = api.user("alice"), api.user("bob")
    bob.call("PUT", "/api/users/alice/follow")
    assert rows(app) == 0  # the follow's row: told, and deleted with its batch
    feed = listening(app, feed_channel(bob.id))
    real_send = outbox.send

    def late(staged, payload):
        # Far behind: the lease ran out, and a relay took the row over meanwhile.
        monkeypatch.setattr(outbox, "utcnow", lambda: utcnow() + timedelta(seconds=31))
        assert app.extensions["outbox"].run_once() == 1
        real_send(staged, payload)

    monkeypatch.setattr(outbox, "send", late)
    alice.post("late")
    assert [m.type for m in feed.take()] == []  # not published twice: the feed restarted once
    assert feed.take_checkpoint() is not None and rows(app) == 0


def marks(app, reader):
    """Return whom *reader*'s feed says they follow among large authors (None: unknown, so
    a stream's next open looks it up)."""
    return app.extensions["broker"].read(feed_channel(reader.id)).marks


def known_marks(app, reader):
    """Open *reader*'s feed as a stream does, so that it knows whom they follow."""
    broker = app.extensions["broker"]
    replay = broker.read(feed_channel(reader.id))
    with app.app_context():
        from app.services.audience import large_followees

        broker.remember(feed_channel(reader.id), replay.version, large_followees(reader.id))
        db.session.remove()
    return marks(app, reader)


def large_dave(api):
    dave = api.user("dave")
    for name in ("carol", "erin", "frank"):  # three: large
        api.user(name).call("PUT", "/api/users/dave/follow")
    return dave


@pytest.mark.parametrize("stop", [stopped_after_commit, stopped_after_publish])
def test_a_follow_of_a_large_author_left_untold_starts_the_readers_feed_over(
        app, api, monkeypatch, stop):
    dave, bob = large_dave(api), api.user("bob")
    assert known_marks(app, bob) == frozenset()
    before = head(app, feed_channel(bob.id))
    stop(monkeypatch)
    assert bob.call("PUT", "/api/users/dave/follow").status_code in (200, 204)
    told = stop is stopped_after_publish
    assert marks(app, bob) == (frozenset({dave.id}) if told else frozenset())
    # Bob's entry, and dave's notification of the follow (on dave's feed).
    assert rows(app) == 2 and relay_after_lease(app) == 2
    # Its streams resync, and their next open looks up whom bob follows: dave among them.
    assert head(app, feed_channel(bob.id)).epoch != before.epoch and marks(app, bob) is None
    assert rows(app) == 0


def test_an_unfollow_left_untold_starts_the_readers_feed_over(app, api, monkeypatch):
    dave, bob = large_dave(api), api.user("bob")
    bob.call("PUT", "/api/users/dave/follow")
    assert known_marks(app, bob) == frozenset({dave.id})
    stopped_after_commit(monkeypatch)
    bob.call("DELETE", "/api/users/dave/follow")
    assert marks(app, bob) == frozenset({dave.id})  # what the lost entry would have changed
    assert relay_after_lease(app) == 1 and marks(app, bob) is None


def test_an_author_made_large_and_left_untold_starts_every_followers_feed_over(
        app, api, monkeypatch):
    dave, bob, carol = api.user("dave"), api.user("bob"), api.user("carol")
    carol.call("PUT", "/api/users/dave/follow")
    api.user("erin").call("PUT", "/api/users/dave/follow")
    for reader in (bob, carol):
        assert known_marks(app, reader) == frozenset()
    real = outbox.send

    def stopped_before_the_announcement(staged, payload, publish=None):
        if staged.author_id:  # the row committed with making dave large
            return None
        return real(staged, payload, publish)

    monkeypatch.setattr(outbox, "send", stopped_before_the_announcement)
    bob.call("PUT", "/api/users/dave/follow")  # the third follower: dave is large now
    with app.app_context():
        assert db.session.scalar(select(User.large_author).where(User.id == dave.id))
        db.session.remove()
    assert marks(app, carol) == frozenset()  # never told
    assert rows(app) == 2 and relay_after_lease(app) == 2
    assert marks(app, bob) is None and marks(app, carol) is None
    assert rows(app) == 0


def test_a_reaction_left_unpublished_restarts_its_posts_channel_and_the_notified_feed(
        app, api, monkeypatch):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post("p")["id"]
    for channel in (post_channel(post_id), feed_channel(alice.id)):
        listening(app, channel)
    before = {channel: head(app, channel)
              for channel in (post_channel(post_id), feed_channel(alice.id))}
    stopped_after_commit(monkeypatch)
    assert bob.call("PUT", f"/api/posts/{post_id}/reaction",
                    json={"type": "like"}).status_code == 200
    # The counts' row (the post's channel) and the notification's (alice's feed).
    assert rows(app) == 2 and relay_after_lease(app) == 2
    assert all(head(app, channel).epoch != place.epoch for channel, place in before.items())


def test_a_comment_like_left_unpublished_restarts_its_posts_channel(app, api, monkeypatch):
    alice = api.user("alice")
    post_id = alice.post("p")["id"]
    comment = alice.call("POST", f"/api/posts/{post_id}/comments", json={"content": "c"})
    comment_id = comment.get_json()["id"]
    channel = post_channel(post_id)
    listening(app, channel)
    before = head(app, channel)
    stopped_after_commit(monkeypatch)
    assert alice.call("PUT", f"/api/comments/{comment_id}/like").status_code == 200
    assert rows(app) == 1 and relay_after_lease(app) == 1  # her own: nobody is notified
    assert head(app, channel).epoch != before.epoch


def test_every_notifying_write_leaves_the_outbox_empty_once_told(app, api):
    alice, bob = api.user("alice"), api.user("bob")
    feeds = [listening(app, feed_channel(user.id)) for user in (alice, bob)]
    bob.call("PUT", "/api/users/alice/follow")
    post_id = bob.post("hi @alice")["id"]
    bob.call("PUT", f"/api/posts/{post_id}/reaction", json={"type": "like"})  # his own
    alice.call("PUT", f"/api/posts/{post_id}/reaction", json={"type": "like"})
    comment = bob.call("POST", f"/api/posts/{post_id}/comments", json={"content": "c"})
    alice.call("PUT", f"/api/comments/{comment.get_json()['id']}/like")
    # Alice hears of the follow and the mention, bob of her reaction and her like.
    assert [[m.type for m in feed.get(1)].count("notification") for feed in feeds] == [2, 2]
    assert rows(app) == 0 and relay_after_lease(app) == 0

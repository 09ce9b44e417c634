"""One user's identical writes at the same instant, on PostgreSQL: one row, only 200s.

Both requests look for the row, find none and insert it; without an upsert the second insert
breaks the primary key and the request fails with a 500. Greenlets share one process, and
psycopg yields to the others while it waits on the database, so the requests really overlap;
each round starts them together and many rounds make the race happen.
"""
import gevent
import pytest
from gevent.event import Event
from sqlalchemy import func, select

from app.events.wire import Position
from app.extensions import db
from app.models import CommentLike, Follow, Reaction, User

pytestmark = pytest.mark.postgres

ROUNDS = 25
AT_ONCE = 4


@pytest.fixture
def app_config():
    """Large authors from AT_ONCE followers: follows at once cross the threshold together."""
    return {"LARGE_AUTHOR_FOLLOWERS": AT_ONCE}


@pytest.fixture
def database_url(postgres_url):
    """PostgreSQL only: its row locks are where the race shows."""
    return postgres_url


def _at_once(app, user, method, path, json=None, users=None):
    """Send the same request AT_ONCE times together (as *user*, or once as each of *users*);
    return the status codes."""
    go = Event()

    def send(sender):
        go.wait()
        with app.app_context():
            return sender.call(method, path, json=json).status_code

    greenlets = [gevent.spawn(send, sender) for sender in users or [user] * AT_ONCE]
    gevent.sleep(0)
    go.set()
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    return [g.value for g in greenlets]


def _open(app, channel):
    """Read the channel's head, as a stream does: a channel nobody opened is cold."""
    app.extensions["broker"].read(channel)


def _published(app, channel):
    """Return the JSON of every event the channel has had since it was opened."""
    broker = app.extensions["broker"]
    head = broker.read(channel).head
    return [m.data for m in broker.read(channel, Position(head.epoch, 0)).messages]


def _count(app, query):
    with app.app_context():
        count = db.session.scalar(query)
        db.session.remove()
        return count


def test_first_reactions_at_once_make_one_row_and_one_event(app, api):
    alice, bob = api.user("alice"), api.user("bob")
    for _ in range(ROUNDS):
        post_id = alice.post()["id"]
        _open(app, f"post:{post_id}")
        statuses = _at_once(app, bob, "PUT", f"/api/posts/{post_id}/reaction", {"type": "love"})
        assert statuses == [200] * AT_ONCE
        rows = _count(app, select(func.count()).select_from(Reaction)
                      .where(Reaction.post_id == post_id))
        assert rows == 1
        [event] = _published(app, f"post:{post_id}")
        assert b'"counts":{"like":0,"love":1' in event and b'"total":1' in event


def test_comment_likes_at_once_make_one_row_and_one_event(app, api):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post()["id"]
    _open(app, f"post:{post_id}")
    for _ in range(ROUNDS):
        comment = alice.call("POST", f"/api/posts/{post_id}/comments", json={"content": "c"})
        comment_id = comment.get_json()["id"]
        statuses = _at_once(app, bob, "PUT", f"/api/comments/{comment_id}/like")
        assert statuses == [200] * AT_ONCE
        rows = _count(app, select(func.count()).select_from(CommentLike)
                      .where(CommentLike.comment_id == comment_id))
        assert rows == 1
        likes = [e for e in _published(app, f"post:{post_id}") if comment_id.encode() in e
                 and b'"comment_like"' in e]
        assert len(likes) == 1 and b'"like_count":1' in likes[0]


def test_follows_at_once_make_one_row(app, api):
    bob = api.user("bob")
    for round_ in range(ROUNDS // 5):
        target = api.user(f"target{round_}")
        statuses = _at_once(app, bob, "PUT", f"/api/users/{target.username}/follow")
        assert statuses == [200] * AT_ONCE
        rows = _count(app, select(func.count()).select_from(Follow)
                      .where(Follow.follower_id == bob.id, Follow.followee_id == target.id))
        assert rows == 1


def test_follows_at_once_that_reach_the_threshold_make_the_author_large(app, api):
    # Each follow counts the followers committed before it; only counting after its own commit
    # lets the last of them see all AT_ONCE and make the author large.
    fans = [api.user(f"fan{i}") for i in range(AT_ONCE)]
    for round_ in range(ROUNDS // 5):
        author = api.user(f"author{round_}")
        statuses = _at_once(app, None, "PUT", f"/api/users/{author.username}/follow", users=fans)
        assert statuses == [200] * AT_ONCE
        assert _count(app, select(User.large_author).where(User.id == author.id)), round_

"""``Idempotency-Key``: a retried write gets its first answer again and nothing is done twice."""
from datetime import timedelta

import gevent
import pytest
from gevent.event import Event
from sqlalchemy import func, select

from app.api import idempotency
from app.events.channels import feed_channel, post_channel
from app.events.wire import Position
from app.extensions import db
from app.models import Comment, CommentLike, Follow, IdempotencyKey, Post, Reaction


def published(app, channel):
    """Return the types of every event the channel has had."""
    broker = app.extensions["broker"]
    head = broker.read(channel).head
    return [m.data for m in broker.read(channel, Position(head.epoch, 0)).messages]


def rows(app, model):
    """Return how many rows *model*'s table holds."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def keyed(user, method, path, key, **kwargs):
    """Send a request with an Idempotency-Key."""
    return user.call(method, path, headers={"Idempotency-Key": key}, **kwargs)


@pytest.fixture
def world(app, api):
    """Alice, Bob (following Alice) and a post of Alice's with one comment of Bob's.

    Bob's feed and the post's channel are open (read once, as a stream does), so that they
    keep what is published to them: a channel nobody opened is cold and gets nothing.
    """
    alice, bob = api.user("alice"), api.user("bob")
    bob.follow(alice)
    post = alice.post("first")
    for channel in (feed_channel(bob.id), post_channel(post["id"])):
        app.extensions["broker"].read(channel)
    comment = bob.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "hi"})
    return alice, bob, post["id"], comment.get_json()["id"]


# Each kind of write: (who, method, path, body, the table it changes, the channel it announces on).
WRITES = {
    "post": ("alice", "POST", "/api/posts", {"content": "retried"}, Post, "feed"),
    "edit": ("alice", "PATCH", "/api/posts/{post}", {"content": "edited"}, None, "post"),
    "delete post": ("alice", "DELETE", "/api/posts/{post}", None, Post, "feed"),
    "comment": ("bob", "POST", "/api/posts/{post}/comments", {"content": "again"}, Comment, "post"),
    "delete comment": ("bob", "DELETE", "/api/comments/{comment}", None, Comment, "post"),
    "reaction": ("bob", "PUT", "/api/posts/{post}/reaction", {"type": "love"}, Reaction, "post"),
    "unreact": ("bob", "DELETE", "/api/posts/{post}/reaction", None, Reaction, "post"),
    "like": ("alice", "PUT", "/api/comments/{comment}/like", None, CommentLike, "post"),
    "unlike": ("alice", "DELETE", "/api/comments/{comment}/like", None, CommentLike, "post"),
    "follow": ("alice", "PUT", "/api/users/bob/follow", None, Follow, None),
    "unfollow": ("bob", "DELETE", "/api/users/alice/follow", None, Follow, None),
    "typing": ("bob", "POST", "/api/posts/{post}/typing", None, None, "post"),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_a_retry_gets_the_first_answer_and_changes_nothing(app, world, kind):
    alice, bob, post_id, comment_id = world
    who, method, path, body, table, channel_kind = WRITES[kind]
    user = {"alice": alice, "bob": bob}[who]
    path = path.format(post=post_id, comment=comment_id)
    if kind == "unreact":
        bob.call("PUT", f"/api/posts/{post_id}/reaction", json={"type": "wow"})
    if kind == "unlike":
        alice.call("PUT", f"/api/comments/{comment_id}/like")
    channel = {"feed": feed_channel(bob.id), "post": post_channel(post_id), None: None}[channel_kind]

    first = keyed(user, method, path, f"key-{kind}", json=body)
    assert first.status_code < 300, first.get_json()
    counted = rows(app, table) if table else None
    events = published(app, channel) if channel else None

    again = keyed(user, method, path, f"key-{kind}", json=body)
    assert again.status_code == first.status_code
    assert again.get_data() == first.get_data()
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert again.headers["Idempotent-Replayed"] == "true"
    if table:
        assert rows(app, table) == counted
    if channel:
        assert published(app, channel) == events


def test_without_a_key_a_write_runs_each_time(app, world):
    alice = world[0]
    before = rows(app, Post)
    alice.post("one")
    alice.post("one")
    assert rows(app, Post) == before + 2


def test_an_edit_retried_after_another_edit_does_not_undo_it(app, world):
    alice, _, post_id, _ = world
    keyed(alice, "PATCH", f"/api/posts/{post_id}", "k1", json={"content": "one"})
    alice.call("PATCH", f"/api/posts/{post_id}", json={"content": "two"})
    replay = keyed(alice, "PATCH", f"/api/posts/{post_id}", "k1", json={"content": "one"})
    assert replay.get_json()["content"] == "one"  # the first answer, as it was
    assert alice.call("GET", f"/api/posts/{post_id}").get_json()["content"] == "two"


def test_a_refusal_is_kept_like_any_answer(app, world):
    alice, bob, post_id, _ = world
    first = keyed(bob, "PATCH", f"/api/posts/{post_id}", "k", json={"content": "mine now"})
    assert first.status_code == 403
    again = keyed(bob, "PATCH", f"/api/posts/{post_id}", "k", json={"content": "mine now"})
    assert (again.status_code, again.get_json()) == (403, first.get_json())


def test_json_key_order_is_the_same_body(app, world):
    alice = world[0]
    first = keyed(alice, "POST", "/api/posts", "k", data='{"content": "x", "extra": 1}',
                  content_type="application/json")
    again = keyed(alice, "POST", "/api/posts", "k", data='{"extra":1,"content":"x"}',
                  content_type="application/json")
    assert again.get_json() == first.get_json()


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/posts", {"content": "something else"}),  # another body
    ("POST", "/api/posts/{post}/comments", {"content": "retried"}),  # another path
    ("PATCH", "/api/posts/{post}", {"content": "retried"}),  # another method
])
def test_the_same_key_for_another_request_is_refused(app, world, method, path, body):
    alice, _, post_id, _ = world
    assert keyed(alice, "POST", "/api/posts", "k", json={"content": "retried"}).status_code == 201
    posts, comments = rows(app, Post), rows(app, Comment)
    response = keyed(alice, method, path.format(post=post_id), "k", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and "Idempotency-Key" in error["fields"]
    assert (rows(app, Post), rows(app, Comment)) == (posts, comments)


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_bad_key_is_refused_and_changes_nothing(app, world, key):
    alice = world[0]
    before = rows(app, Post)
    response = alice.call("POST", "/api/posts", json={"content": "x"},
                          headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {
        "Idempotency-Key": "1 to 255 printable ASCII characters"}
    assert rows(app, Post) == before


def test_the_longest_key_is_accepted(app, world):
    alice = world[0]
    key = "~" * 255
    first = keyed(alice, "POST", "/api/posts", key, json={"content": "x"})
    assert first.status_code == 201
    assert keyed(alice, "POST", "/api/posts", key, json={"content": "x"}).get_json() == \
        first.get_json()


def test_keys_are_per_user(app, world):
    alice, bob, _, _ = world
    mine = keyed(alice, "POST", "/api/posts", "shared", json={"content": "x"})
    theirs = keyed(bob, "POST", "/api/posts", "shared", json={"content": "x"})
    assert theirs.status_code == 201
    assert theirs.get_json()["id"] != mine.get_json()["id"]
    assert theirs.get_json()["author"]["username"] == "bob"


def test_a_key_needs_a_signed_in_user(app, world):
    response = world[0].client.post("/api/posts", json={"content": "x"},
                                    headers={"Idempotency-Key": "k"})
    assert response.status_code == 401


@pytest.fixture
def clock(monkeypatch):
    """The keys' clock, which a test moves forward with ``clock.advance(delta)``."""
    class Clock:
        offset = timedelta()

        def advance(self, delta):
            self.offset += delta

    moved = Clock()
    real = idempotency.clock
    monkeypatch.setattr(idempotency, "clock", lambda: real() + moved.offset)
    return moved


@pytest.fixture
def app_config():
    """Purge expired keys on every keyed request (the default is once a minute)."""
    return {"IDEMPOTENCY_PURGE_SECONDS": 0}


def test_a_key_expires_after_24_hours_and_is_purged(app, world, clock):
    alice, bob = world[0], world[1]
    first = keyed(alice, "POST", "/api/posts", "day", json={"content": "x"})
    keyed(bob, "POST", "/api/posts", "other", json={"content": "y"})
    clock.advance(timedelta(hours=23, minutes=59))
    assert keyed(alice, "POST", "/api/posts", "day", json={"content": "x"}).get_json() == \
        first.get_json()
    clock.advance(timedelta(minutes=2))
    before = rows(app, Post)
    later = keyed(alice, "POST", "/api/posts", "day", json={"content": "x"})
    assert later.status_code == 201 and later.get_json()["id"] != first.get_json()["id"]
    assert rows(app, Post) == before + 1
    assert rows(app, IdempotencyKey) == 1  # Bob's expired key was purged; Alice's is new


def test_a_write_cut_off_after_its_commit_is_not_done_again(app, world):
    """The key's row commits with the write: a crash before the answer is kept refuses the
    retry instead of writing twice."""
    alice = world[0]

    def crash(response):
        raise SystemExit("the worker died")

    app.after_request_funcs["api"] = [crash]
    with pytest.raises(SystemExit):
        keyed(alice, "POST", "/api/posts", "k", json={"content": "once"})
    app.after_request_funcs["api"] = [idempotency.keep_answer]
    before = rows(app, Post)
    app.config.update(IDEMPOTENCY_WAIT_SECONDS=0.2, IDEMPOTENCY_LEASE_SECONDS=3600)
    busy = keyed(alice, "POST", "/api/posts", "k", json={"content": "once"})
    assert busy.status_code == 409
    assert busy.get_json()["error"] == {"code": "conflict",
                                        "message": "request with this key in progress"}
    app.config.update(IDEMPOTENCY_LEASE_SECONDS=0)
    lost = keyed(alice, "POST", "/api/posts", "k", json={"content": "once"})
    assert lost.status_code == 409 and "cut off" in lost.get_json()["error"]["message"]
    assert rows(app, Post) == before


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_concurrent_retries_do_the_write_once(app, world):
    alice, _, post_id, _ = world
    go = Event()

    def send():
        go.wait()
        with app.app_context():
            response = keyed(alice, "POST", f"/api/posts/{post_id}/comments", "race",
                             json={"content": "at once"})
            return response.status_code, response.get_json()

    greenlets = [gevent.spawn(send) for _ in range(4)]
    gevent.sleep(0)
    go.set()
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    answers = [g.value for g in greenlets]
    assert [status for status, _ in answers] == [201] * 4
    assert len({body["id"] for _, body in answers}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Comment)
                                 .where(Comment.content == "at once")) == 1
    comments = [e for e in published(app, post_channel(post_id)) if b'"new_comment"' in e]
    assert len(comments) == 2  # Bob's first comment and this one, once


def test_every_write_route_documents_the_header(app, client):
    document = client.get("/api/openapi.json").get_json()
    writes = [(rule, method.lower()) for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("api.")
              for method in rule.methods & idempotency.WRITE_METHODS]
    assert len(writes) >= 12
    for rule, method in writes:
        path = rule.rule.replace("<", "{").replace(">", "}").rstrip("/")
        params = document["paths"][path][method]["parameters"]
        assert {"name": "Idempotency-Key", "in": "header"}.items() <= \
            next(p for p in params if p["in"] == "header").items(), path

"""An event is published only after its change is committed, and never for a rolled-back one."""
import pytest
from sqlalchemy import create_engine, select

from app.events.channels import feed_channel
from app.extensions import db
from app.models import Post
from app.transports.delivery import Inbox


class VisibilityProbe(Inbox):
    """An inbox that, on each event, asks a separate connection whether the post is visible."""

    def __init__(self, channel, url):
        super().__init__(channel)
        self.engine = create_engine(url)
        self.visible = []

    def put(self, message):
        post_id = message.data.split(b'"post":{"id":"', 1)[1][:36].decode()
        with self.engine.connect() as conn:
            self.visible.append(conn.execute(select(Post.id).where(Post.id == post_id)).first()
                                is not None)
        super().put(message)


def listen(app, subscriber):
    """Open the subscriber's channel as a stream does: read its head, then listen."""
    broker = app.extensions["broker"]
    broker.read(subscriber.channel)  # a channel nobody opened is cold and gets nothing
    broker.subscribe(subscriber)


def test_a_subscriber_sees_the_change_when_the_event_arrives(app, api):
    alice = api.user("alice")
    probe = VisibilityProbe(feed_channel(alice.id), app.config["SQLALCHEMY_DATABASE_URI"])
    listen(app, probe)
    alice.post("committed first")
    probe.engine.dispose()
    assert probe.visible == [True]


def test_a_rolled_back_change_publishes_nothing(app, api, monkeypatch):
    alice = api.user("alice")
    inbox = Inbox(feed_channel(alice.id))
    listen(app, inbox)

    def fail_commit():
        db.session.rollback()
        raise RuntimeError("the database went away")

    monkeypatch.setattr(db.session, "commit", fail_commit)
    response = alice.call("POST", "/api/posts", json={"content": "never saved"})
    monkeypatch.undo()
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert inbox.get(0.2) == []
    with app.app_context():
        assert db.session.scalar(select(Post.id)) is None


@pytest.mark.parametrize("method,path,body", [
    ("PATCH", "/api/posts/{post}", {"content": "x" * 5001}),
    ("PUT", "/api/posts/{post}/reaction", {"type": "nope"}),
])
def test_a_refused_change_publishes_nothing(app, api, method, path, body):
    alice = api.user("alice")
    post = alice.post("original")
    inbox = Inbox(feed_channel(alice.id))
    listen(app, inbox)
    response = alice.call(method, path.format(post=post["id"]), json=body)
    assert response.status_code == 422
    assert inbox.get(0.2) == []

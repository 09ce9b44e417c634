"""Posts and the feed: write, edit, delete, and read newest first by cursor."""
from sqlalchemy import and_, or_, select

from app.errors import Forbidden
from app.events import schema
from app.events.channels import post_event_channels
from app.extensions import db
from app.models import Follow, Post
from app.models.base import utcnow
from app.serializers import new_post_json, post_json
from app.services import notifications, outbox
from app.services.audience import publish_to_followers
from app.services.lookup import get_post


def stage_post_event(event_type, post_id, author_id, payload):
    """Store an event about a post with its change (:mod:`app.services.outbox`), for the
    author's and followers' feeds and the post's channel; :func:`outbox.send` it after the
    commit."""
    return outbox.stage(event_type, payload, post_event_channels(event_type, post_id), author_id)


def publish_to_feeds(post_id, event_of):
    """Publish ``event_of(post_id)`` to the feeds of the post's author and followers.

    Nothing when the post is gone: its ``post_deleted`` told the feeds.
    """
    author_id = db.session.scalar(select(Post.author_id).where(Post.id == post_id))
    if author_id is not None:
        publish_to_followers(author_id, event_of(post_id))


def create_post(author_id, content):
    """Create a post and announce it as ``new_post``; return its ``Post`` JSON without
    ``my_reaction`` (the event's, built once)."""
    post = Post(author_id=author_id, content=content)
    db.session.add(post)
    db.session.flush()  # gives the post its id
    created = notifications.on_mentions(author_id, content, post.id)
    data = new_post_json(post)
    payload = {"post": data}
    staged = stage_post_event(schema.NEW_POST, data["id"], author_id, payload)
    db.session.commit()
    outbox.send(staged, payload)
    notifications.announce(created)
    return data


def _own_post(user_id, post_id):
    post = get_post(post_id)
    if post.author_id != user_id:
        raise Forbidden("only the author may change this post")
    return post


def update_post(user_id, post_id, content):
    """Replace the content of the user's own post and announce ``post_updated``."""
    post = _own_post(user_id, post_id)
    post.content = content
    post.updated_at = utcnow()
    created = notifications.on_mentions(user_id, content, post.id)  # the newly mentioned only
    db.session.flush()
    payload = {"post": post_json(post, with_my_reaction=False)}
    staged = stage_post_event(schema.POST_UPDATED, post.id, post.author_id, payload)
    db.session.commit()
    outbox.send(staged, payload)
    notifications.announce(created)
    return post


def delete_post(user_id, post_id):
    """Delete the user's own post with its comments and reactions; announce ``post_deleted``."""
    post = _own_post(user_id, post_id)
    post_id, author_id = post.id, post.author_id
    db.session.delete(post)
    payload = {"post_id": post_id}
    staged = stage_post_event(schema.POST_DELETED, post_id, author_id, payload)
    db.session.commit()
    outbox.send(staged, payload)


def _newest_first(query, limit, before):
    """Return a page of *query* before the cursor ``(created_at, id)``, and the next cursor."""
    if before is not None:
        created_at, post_id = before
        query = query.where(or_(Post.created_at < created_at,
                                and_(Post.created_at == created_at, Post.id < post_id)))
    rows = list(db.session.scalars(
        query.order_by(Post.created_at.desc(), Post.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1].created_at, rows[-1].id) if more else None)


def feed_page(viewer_id, limit, before=None):
    """Return the viewer's and followed users' posts, newest first, and the next cursor."""
    followed = select(Follow.followee_id).where(Follow.follower_id == viewer_id)
    query = select(Post).where(or_(Post.author_id == viewer_id, Post.author_id.in_(followed)))
    return _newest_first(query, limit, before)


def user_posts_page(user_id, limit, before=None):
    """Return one user's posts, newest first, and the next cursor."""
    return _newest_first(select(Post).where(Post.author_id == user_id), limit, before)

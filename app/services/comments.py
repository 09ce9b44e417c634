"""Comments and their likes; each change announced on the post's channel, and a post's
comment count on the feeds (conflated: :mod:`app.services.conflation`)."""
from sqlalchemy import and_, delete, or_, select

from app.counts import comment_counts, like_counts
from app.errors import Forbidden
from app.events import schema
from app.events.channels import post_channel
from app.extensions import db
from app.models import Comment, CommentLike
from app.serializers import new_comment_json
from app.services import notifications, outbox
from app.services.conflation import COMMENTS, feed_counts
from app.services.lookup import get_comment, get_post
from app.services.posts import publish_to_feeds
from app.services.upsert import insert


def _count_event(post_id):
    return schema.Event(schema.COMMENT_COUNT, {
        "post_id": post_id, "comment_count": comment_counts([post_id])[post_id]})


def _count_to_feeds(post_id):
    publish_to_feeds(post_id, _count_event)


def comments_page(post_id, limit, after=None):
    """Return a post's comments oldest first after the cursor, and the next cursor."""
    post = get_post(post_id)
    query = select(Comment).where(Comment.post_id == post.id)
    if after is not None:
        created_at, comment_id = after
        query = query.where(or_(Comment.created_at > created_at,
                                and_(Comment.created_at == created_at, Comment.id > comment_id)))
    rows = list(db.session.scalars(
        query.order_by(Comment.created_at, Comment.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1].created_at, rows[-1].id) if more else None)


def create_comment(author_id, post_id, content):
    """Add a comment to a post and announce ``new_comment``; return its ``Comment`` JSON.

    The event and the API's answer carry the same object: it is built once.
    """
    post = get_post(post_id)
    post_id = post.id  # read before the commit expires the row
    comment = Comment(post_id=post_id, author_id=author_id, content=content)
    db.session.add(comment)
    db.session.flush()  # gives the comment its id
    created = notifications.on_comment(author_id, post, comment)
    data = new_comment_json(comment)
    payload = {"post_id": post_id, "comment": data}
    staged = outbox.stage(schema.NEW_COMMENT, payload, [post_channel(post_id)])
    db.session.commit()
    outbox.send(staged, payload)
    feed_counts().changed(COMMENTS, post_id, _count_to_feeds)
    notifications.announce(created)
    return data


def delete_comment(user_id, comment_id):
    """Delete a comment as its author or the post's author; announce ``comment_deleted``."""
    comment = get_comment(comment_id)
    post = get_post(comment.post_id)
    if user_id not in (comment.author_id, post.author_id):
        raise Forbidden("only the comment's or the post's author may delete it")
    post_id, comment_id = post.id, comment.id
    db.session.delete(comment)
    payload = {"post_id": post_id, "comment_id": comment_id}
    staged = outbox.stage(schema.COMMENT_DELETED, payload, [post_channel(post_id)])
    db.session.commit()
    outbox.send(staged, payload)
    feed_counts().changed(COMMENTS, post_id, _count_to_feeds)


def set_like(user_id, comment_id, liked):
    """Like or unlike a comment (idempotent); return ``(comment, like_count)``.

    The count is read after the commit, which stores an outbox row for the post's channel
    rather than the event (as a reaction does: :mod:`app.services.reactions`).
    """
    comment = get_comment(comment_id)
    ids = {"post_id": comment.post_id, "comment_id": comment.id}
    staged, created = _like(user_id, comment, ids) if liked else (_unlike(user_id, ids), [])
    count = like_counts([ids["comment_id"]])[ids["comment_id"]]
    if staged is not None:
        outbox.send(staged, {**ids, "like_count": count})
    notifications.announce(created)
    return comment, count


def _like(user_id, comment, ids):
    """Like *comment*; return the outbox row of the change (None when it was liked already),
    and the notifications that tell of it."""
    added = db.session.execute(insert(CommentLike).values(
        comment_id=comment.id, user_id=user_id).on_conflict_do_nothing()).rowcount
    created = notifications.on_comment_like(user_id, comment) if added else []
    staged = _stage_like(ids) if added else None
    db.session.commit()
    return staged, created


def _unlike(user_id, ids):
    """Unlike a comment; return the outbox row of the change (None when it was not liked)."""
    removed = db.session.execute(delete(CommentLike).where(
        CommentLike.comment_id == ids["comment_id"], CommentLike.user_id == user_id)).rowcount
    staged = _stage_like(ids) if removed else None
    db.session.commit()
    return staged


def _stage_like(ids):
    return outbox.stage(schema.COMMENT_LIKE, ids, [post_channel(ids["post_id"])])


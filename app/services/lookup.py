"""Fetch one row by id or name, or raise the contract's 404."""
import re
import uuid

from sqlalchemy import select

from app.errors import NotFound
from app.extensions import db
from app.models import Comment, Post, User

_USERNAME = re.compile(r"[A-Za-z0-9_]{3,30}")


def canonical_uuid(value):
    """Return *value* as the lower-case hyphenated UUID the ids are stored as, or None."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _by_id(model, row_id, what):
    """Return the *model* row of a UUID given in any case; raise :class:`NotFound` otherwise."""
    row_id = canonical_uuid(row_id)
    row = db.session.get(model, row_id) if row_id else None
    if row is None:
        raise NotFound(f"no such {what}")
    return row


def get_post(post_id):
    """Return the post *post_id*; raise :class:`NotFound` when there is none."""
    return _by_id(Post, post_id, "post")


def existing_post_id(post_id):
    """Return the stored id of the post *post_id*; raise :class:`NotFound` when there is none.

    For stream opens, which need to know the post exists and nothing else of it: every
    long-poll asks again. One indexed SELECT of the id on a pooled connection, without the
    session and the ORM's loading, costs about half of :func:`get_post`.
    """
    row_id = canonical_uuid(post_id)
    found = None
    if row_id is not None:
        query = select(Post.id).where(Post.id == row_id)
        if db.session().in_transaction():
            # The request's transaction holds a connection: a second one could wait for the
            # pool while holding the first.
            found = db.session.scalar(query)
        else:
            with db.engine.connect() as connection:
                found = connection.scalar(query)
    if found is None:
        raise NotFound("no such post")
    return found


def get_comment(comment_id):
    """Return the comment *comment_id*; raise :class:`NotFound` when there is none."""
    return _by_id(Comment, comment_id, "comment")


def get_user(username):
    """Return the user named *username* in any case; raise :class:`NotFound` when none."""
    user = None
    if _USERNAME.fullmatch(username):  # no such name can exist (and NUL breaks PostgreSQL)
        user = db.session.scalar(select(User).where(User.username_key == username.lower()))
    if user is None:
        raise NotFound("no such user")
    return user

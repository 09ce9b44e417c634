"""Fetch one row by id or name, or raise the contract's 404."""
import re
import uuid

from sqlalchemy import select

from app.errors import NotFound
from app.extensions import db
from app.models import Comment, Post, User

_USERNAME = re.compile(r"[A-Za-z0-9_]{3,30}")


def _canonical_uuid(value):
    """Return *value* as the lower-case hyphenated UUID the ids are stored as, or None."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def get_post(post_id):
    """Return the post *post_id*; raise :class:`NotFound` when there is none."""
    post_id = _canonical_uuid(post_id)
    post = db.session.get(Post, post_id) if post_id else None
    if post is None:
        raise NotFound("no such post")
    return post


def get_comment(comment_id):
    """Return the comment *comment_id*; raise :class:`NotFound` when there is none."""
    comment_id = _canonical_uuid(comment_id)
    comment = db.session.get(Comment, comment_id) if comment_id else None
    if comment is None:
        raise NotFound("no such comment")
    return comment


def get_user(username):
    """Return the user named *username* in any case; raise :class:`NotFound` when none."""
    user = None
    if _USERNAME.fullmatch(username):  # no such name can exist (and NUL breaks PostgreSQL)
        user = db.session.scalar(select(User).where(User.username_key == username.lower()))
    if user is None:
        raise NotFound("no such user")
    return user

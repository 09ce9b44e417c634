"""Fetch one row by id or name, or raise the contract's 404."""
import uuid

from sqlalchemy import select

from app.errors import NotFound
from app.extensions import db
from app.models import Comment, Post, User


def _is_uuid(value):
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def get_post(post_id):
    """Return the post *post_id*; raise :class:`NotFound` when there is none."""
    post = db.session.get(Post, post_id) if _is_uuid(post_id) else None
    if post is None:
        raise NotFound("no such post")
    return post


def get_comment(comment_id):
    """Return the comment *comment_id*; raise :class:`NotFound` when there is none."""
    comment = db.session.get(Comment, comment_id) if _is_uuid(comment_id) else None
    if comment is None:
        raise NotFound("no such comment")
    return comment


def get_user(username):
    """Return the user named *username* in any case; raise :class:`NotFound` when none."""
    user = db.session.scalar(select(User).where(User.username_key == username.lower()))
    if user is None:
        raise NotFound("no such user")
    return user

"""Typing announcements: ephemeral events on a post's channel, throttled per user per post."""
from flask import current_app

from app.events import schema
from app.events.channels import post_channel
from app.extensions import db
from app.models import User
from app.ratelimit import allow
from app.serializers import author_json
from app.services import notify
from app.services.lookup import canonical_uuid, get_post


def announce_typing(user, post_id):
    """Tell everyone on the post that *user* is typing; 404 for an unknown post."""
    post = get_post(post_id)
    announce_typing_as(author_json(user), post.id)


def announce_typing_as(author, post_id):
    """Publish ``typing`` for *author* (a short user object) on an existing post.

    At most one announcement per user per post per ``TYPING_THROTTLE`` (default 2 s): a
    keystroke stream becomes one event every few seconds. Returns whether it was published.
    *post_id* may be spelled as in a URL (any case, with or without hyphens): the event goes
    to the one channel every stream of the post listens on.
    """
    post_id = canonical_uuid(post_id)
    if not allow(current_app.config["TYPING_THROTTLE"], "typing", author["id"], post_id):
        return False
    notify.publish([post_channel(post_id)],
                   schema.Event(schema.TYPING, {"post_id": post_id, "user": author}))
    return True


def typing_author(user_id):
    """Return the short form of user *user_id* that typing events carry, or None."""
    user = db.session.get(User, user_id)
    return author_json(user) if user is not None else None

"""Reactions: one per user per post, replaced or removed; counts announced live.

The post's channel gets every change; the feeds get the counts conflated (at most once per
post per ``FEED_COUNTS_SECONDS``, ending on the final counts: :mod:`app.services.conflation`).
"""
from sqlalchemy import delete

from app.counts import reaction_counts
from app.errors import ValidationFailed
from app.events import schema
from app.events.channels import post_channel
from app.extensions import db
from app.models import REACTION_TYPES, Reaction
from app.serializers import reaction_data
from app.services import notifications, notify
from app.services.conflation import REACTIONS, feed_counts
from app.services.lookup import get_post
from app.services.posts import publish_to_feeds
from app.services.upsert import insert


def _event(post_id):
    data = reaction_data(reaction_counts([post_id])[post_id])
    return schema.Event(schema.POST_REACTION, {"post_id": post_id, "reaction_data": data})


def _to_feeds(post_id):
    publish_to_feeds(post_id, _event)


def _changed(post, created=()):
    """Commit, then announce the post's new counts and the notifications *created*; return
    the counts."""
    db.session.commit()
    event = _event(post.id)
    notify.publish([post_channel(post.id)], event)
    feed_counts().changed(REACTIONS, post.id, _to_feeds)
    notifications.announce(created)
    return event.payload["reaction_data"]


def set_reaction(user_id, post_id, reaction_type):
    """Make the user's reaction to the post *reaction_type*, replacing an earlier one."""
    if reaction_type not in REACTION_TYPES:
        raise ValidationFailed("type must be one of " + ", ".join(REACTION_TYPES),
                               fields={"type": "unknown reaction type"})
    post = get_post(post_id)
    upsert = insert(Reaction).values(post_id=post.id, user_id=user_id, type=reaction_type)
    upsert = upsert.on_conflict_do_update(
        index_elements=[Reaction.post_id, Reaction.user_id], set_={"type": upsert.excluded.type},
        where=Reaction.type != upsert.excluded.type)
    if not db.session.execute(upsert).rowcount:
        db.session.rollback()
        return reaction_data(reaction_counts([post.id])[post.id])  # unchanged: nothing to announce
    return _changed(post, notifications.on_reaction(user_id, post))


def clear_reaction(user_id, post_id):
    """Remove the user's reaction to the post, if any."""
    post = get_post(post_id)
    removed = db.session.execute(delete(Reaction).where(
        Reaction.post_id == post.id, Reaction.user_id == user_id)).rowcount
    if not removed:
        db.session.rollback()
        return reaction_data(reaction_counts([post.id])[post.id])
    return _changed(post)

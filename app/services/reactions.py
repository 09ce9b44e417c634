"""Reactions: one per user per post, replaced or removed; counts announced live.

The post's channel gets every change; the feeds get the counts conflated (at most once per
post per ``FEED_COUNTS_SECONDS``, ending on the final counts: :mod:`app.services.conflation`).
The counts are read after the commit (concurrent changes each see all committed before), so
the change stores an outbox row for the post's channel rather than its event: a worker stopped
before the publish leaves the row, and the relay starts the channel over, whose clients resync
and read the counts over REST (:mod:`app.services.outbox`).
"""
from sqlalchemy import delete

from app.counts import reaction_counts
from app.errors import ValidationFailed
from app.events import schema
from app.events.channels import post_channel
from app.extensions import db
from app.models import REACTION_TYPES, Reaction
from app.serializers import reaction_data
from app.services import notifications, outbox
from app.services.conflation import REACTIONS, feed_counts
from app.services.posts import publish_to_feeds
from app.services.upsert import insert


def _event(post_id):
    data = reaction_data(reaction_counts([post_id])[post_id])
    return schema.Event(schema.POST_REACTION, {"post_id": post_id, "reaction_data": data})


def _to_feeds(post_id):
    # The feeds' send reads the counts itself, after the conflation lease is taken: a change
    # committed after that read finds the lease held, and the window's end sends it.
    publish_to_feeds(post_id, _event)


def _changed(post_id, created=()):
    """Commit, then announce the post's new counts and the notifications *created*; return
    the counts."""
    staged = outbox.stage(schema.POST_REACTION, {"post_id": post_id}, [post_channel(post_id)])
    db.session.commit()
    event = _event(post_id)
    outbox.send(staged, event.payload)
    feed_counts().changed(REACTIONS, post_id, _to_feeds)
    notifications.announce(created)
    return event.payload["reaction_data"]


def set_reaction(user_id, post, reaction_type):
    """Make the user's reaction to *post* (a :class:`Post`) *reaction_type*, replacing an
    earlier one."""
    if reaction_type not in REACTION_TYPES:
        raise ValidationFailed("type must be one of " + ", ".join(REACTION_TYPES),
                               fields={"type": "unknown reaction type"})
    post_id = post.id
    upsert = insert(Reaction).values(post_id=post_id, user_id=user_id, type=reaction_type)
    upsert = upsert.on_conflict_do_update(
        index_elements=[Reaction.post_id, Reaction.user_id], set_={"type": upsert.excluded.type},
        where=Reaction.type != upsert.excluded.type)
    if not db.session.execute(upsert).rowcount:
        db.session.rollback()
        return reaction_data(reaction_counts([post_id])[post_id])  # unchanged: nothing to announce
    return _changed(post_id, notifications.on_reaction(user_id, post))


def clear_reaction(user_id, post):
    """Remove the user's reaction to *post* (a :class:`Post`), if any."""
    post_id = post.id
    removed = db.session.execute(delete(Reaction).where(
        Reaction.post_id == post_id, Reaction.user_id == user_id)).rowcount
    if not removed:
        db.session.rollback()
        return reaction_data(reaction_counts([post_id])[post_id])
    return _changed(post_id)

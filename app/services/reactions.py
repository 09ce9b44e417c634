"""Reactions: one per user per post, replaced or removed; counts announced live."""
from sqlalchemy import delete

from app.errors import ValidationFailed
from app.events import schema
from app.extensions import db
from app.models import REACTION_TYPES, Reaction
from app.serializers import reaction_data
from app.services import notifications
from app.services.counts import reaction_counts
from app.services.lookup import get_post
from app.services.posts import publish_post_event
from app.services.upsert import insert


def _changed(post, created=()):
    """Commit, then announce the post's new counts and the notifications *created*; return
    the counts."""
    db.session.commit()
    data = reaction_data(reaction_counts([post.id])[post.id])
    publish_post_event(schema.POST_REACTION, post, {"post_id": post.id, "reaction_data": data})
    notifications.announce(created)
    return data


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

"""Follows between users; idempotent both ways."""
from sqlalchemy import delete, select

from app.errors import ApiError
from app.extensions import db
from app.models import Follow
from app.services import notifications
from app.services.upsert import insert


def follow(viewer_id, target):
    """Make *viewer_id* follow *target*; following twice changes nothing."""
    if target.id == viewer_id:
        raise ApiError("you cannot follow yourself", code="bad_request", status=400)
    added = db.session.execute(insert(Follow).values(
        follower_id=viewer_id, followee_id=target.id).on_conflict_do_nothing()).rowcount
    created = notifications.on_follow(viewer_id, target.id) if added else []
    db.session.commit()
    notifications.announce(created)


def unfollow(viewer_id, target):
    """Make *viewer_id* stop following *target*; unfollowing twice changes nothing."""
    db.session.execute(delete(Follow).where(Follow.follower_id == viewer_id,
                                            Follow.followee_id == target.id))
    db.session.commit()


def follower_ids(user_id):
    """Return the ids of everyone following *user_id* now."""
    return list(db.session.scalars(select(Follow.follower_id).where(Follow.followee_id == user_id)))

"""Follows between users; idempotent both ways.

Following or unfollowing a large author also tells the reader's open streams, and the follow
that makes an author large tells every follower's (:mod:`app.services.audience`).
"""
import logging

from sqlalchemy import delete

from app.broker import BrokerUnavailable
from app.errors import ApiError
from app.extensions import db
from app.models import Follow
from app.services import audience, notifications
from app.services.upsert import insert

log = logging.getLogger(__name__)


def follow(viewer_id, target):
    """Make *viewer_id* follow *target*; following twice changes nothing."""
    if target.id == viewer_id:
        raise ApiError("you cannot follow yourself", code="bad_request", status=400)
    since = _large_head_before_commit(target)
    added = db.session.execute(insert(Follow).values(
        follower_id=viewer_id, followee_id=target.id).on_conflict_do_nothing()).rowcount
    created = notifications.on_follow(viewer_id, target.id) if added else []
    db.session.commit()
    notifications.announce(created)
    became_large = bool(added and since is not None and not target.large_author
                        and _mark_if_reached(target))
    if became_large:
        audience.announce_large(target.id, since)
    elif added and target.large_author:  # read again since the commit
        # Large before this follow, or made large by a follow committed beside this one,
        # whose announcement may have looked for followers before this one was committed.
        if since is None:
            # The broker was away before the commit: no place to catch up from. The reader's
            # feed starts over instead (its streams resync, their next open looks it up).
            log.warning("reader %s followed large author %s while the broker was away; their "
                        "feed starts over", viewer_id, target.id)
            audience.start_over(viewer_id)
        else:
            audience.announce_follow(viewer_id, target.id, True, since)
            if not audience.follows(viewer_id, target.id):
                # An unfollow committed meanwhile may have announced itself first.
                audience.announce_follow(viewer_id, target.id, False)


def _mark_if_reached(target):
    """Make *target* large if the follow just committed brought them to the threshold.

    Counted after the commit, in a transaction of its own: of follows committed at once, each
    counting only itself and those committed before, the last one sees them all. (Counted
    before, two follows that each see T-1 would leave the author small.) The update is
    conditional, so only one of them announces it.
    """
    changed = audience.threshold_reached(target.id) and audience.mark_large(target, True)
    db.session.commit()
    return changed


def _large_head_before_commit(target):
    """Return the large-author channel's head, read before the follow commits: whatever the
    author publishes after the commit is after it.

    Without the broker, a follow of a large author waits (503): the reader's streams could
    not be told. A small author's follow goes on; that author just cannot become large now.
    """
    if target.large_author:
        return audience.large_head()
    try:
        return audience.large_head()
    except BrokerUnavailable:
        log.warning("broker away: author %s cannot become large with this follow", target.id)
        return None


def unfollow(viewer_id, target):
    """Make *viewer_id* stop following *target*; unfollowing twice changes nothing."""
    try:
        # Before the commit, as a follow reads it: where a follow that races this unfollow,
        # and commits last, is to be caught up from.
        since = audience.large_head()
    except BrokerUnavailable:
        since = None  # the entry below fails too, and the broker starts the feed over
    removed = db.session.execute(delete(Follow).where(Follow.follower_id == viewer_id,
                                                      Follow.followee_id == target.id)).rowcount
    db.session.commit()
    if not removed:
        return
    # After the commit, as a follow counts: the last of unfollows committed at once sees them all.
    if target.large_author and audience.below_half(target.id):
        audience.mark_large(target, False)
        db.session.commit()
    # Whatever the author is now: one large before may be again, and the reader's feed must
    # not keep them in its marks.
    audience.announce_follow(viewer_id, target.id, False)
    if since is not None and audience.follows(viewer_id, target.id) and \
            audience.is_large(target.id):
        # A follow committed meanwhile may have announced itself first.
        audience.announce_follow(viewer_id, target.id, True, since)

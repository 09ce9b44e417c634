"""Follows between users; idempotent both ways.

Following or unfollowing a large author also tells the reader's open streams, and the follow
that makes an author large tells every follower's (:mod:`app.services.audience`). Each of those
announcements is decided after its commit, and each commit stores an outbox row with it
(:mod:`app.services.outbox`): should the process stop before the announcement, the relay starts
the feeds it was for over, whose streams resync and look up again whom their reader follows.
"""
import logging

from sqlalchemy import delete

from app.broker import BrokerUnavailable
from app.errors import ApiError
from app.events.channels import feed_channel
from app.events.schema import FOLLOWS_CHANGED
from app.extensions import db
from app.models import Follow
from app.services import audience, notifications, outbox
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
    staged = _stage_for_reader(viewer_id, target, True) if added else None
    db.session.commit()
    notifications.announce(created)
    if staged is None:
        return
    made_large = None
    if since is not None and not target.large_author:  # read again since the commit
        made_large = _mark_if_reached(target)
    outbox.send(staged, _change(target, True),
                publish=lambda: _tell_of_follow(viewer_id, target, since, made_large))


def _tell_of_follow(viewer_id, target, since, made_large):
    """Tell the streams a committed follow concerns; return False when the broker was away.

    *made_large* is the outbox row of the follow's making *target* large, if it did.
    """
    if made_large is not None:
        return outbox.send(made_large, _change(target, True),
                           publish=lambda: audience.announce_large(target.id, since))
    if not target.large_author:  # read again since the commit
        return True
    # Large before this follow, or made large by a follow committed beside this one, whose
    # announcement may have looked for followers before this one was committed.
    if since is None:
        # The broker was away before the commit: no place to catch up from. The reader's
        # feed starts over instead (its streams resync, their next open looks it up).
        log.warning("reader %s followed large author %s while the broker was away; their "
                    "feed starts over", viewer_id, target.id)
        audience.start_over(viewer_id)
        return False  # the row stays: if this process stops first, the relay starts it over
    told = audience.announce_follow(viewer_id, target.id, True, since)
    if not audience.follows(viewer_id, target.id):
        # An unfollow committed meanwhile may have announced itself first.
        told = audience.announce_follow(viewer_id, target.id, False) and told
    return told


def _mark_if_reached(target):
    """Make *target* large if the follow just committed brought them to the threshold; return
    the outbox row committed with that change (None when it did not change).

    Counted after the commit, in a transaction of its own: of follows committed at once, each
    counting only itself and those committed before, the last one sees them all. (Counted
    before, two follows that each see T-1 would leave the author small.) The update is
    conditional, so only one of them announces it.
    """
    changed = audience.threshold_reached(target.id) and audience.mark_large(target, True)
    # Left behind, the row starts every follower's feed over, as for a small author's event.
    staged = outbox.stage(FOLLOWS_CHANGED, _change(target, True), author_id=target.id,
                          large=False) if changed else None
    db.session.commit()
    return staged


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
    staged = _stage_for_reader(viewer_id, target, False) if removed else None
    db.session.commit()
    if staged is None:
        return
    # After the commit, as a follow counts: the last of unfollows committed at once sees them all.
    if target.large_author and audience.below_half(target.id):
        audience.mark_large(target, False)
        db.session.commit()
    outbox.send(staged, _change(target, False),
                publish=lambda: _tell_of_unfollow(viewer_id, target, since))


def _tell_of_unfollow(viewer_id, target, since):
    """Tell the reader's streams of a committed unfollow; return False when the broker was
    away."""
    # Whatever the author is now: one large before may be again, and the reader's feed must
    # not keep them in its marks.
    told = audience.announce_follow(viewer_id, target.id, False)
    if since is not None and audience.follows(viewer_id, target.id) and \
            audience.is_large(target.id):
        # A follow committed meanwhile may have announced itself first.
        told = audience.announce_follow(viewer_id, target.id, True, since) and told
    return told


def _change(target, following):
    return {"author": target.id, "following": following}


def _stage_for_reader(viewer_id, target, following):
    """Store, with a follow or unfollow, the row that starts the reader's feed over should
    this process stop before telling its streams."""
    return outbox.stage(FOLLOWS_CHANGED, _change(target, following), [feed_channel(viewer_id)])

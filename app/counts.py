"""Aggregate counts for a whole page of rows in one query each, never one query per row."""
from sqlalchemy import func, select

from app.extensions import db
from app.models import REACTION_TYPES, Comment, CommentLike, Follow, Reaction


def reaction_counts(post_ids):
    """Return ``{post_id: {type: n, …all six…}}`` for *post_ids*."""
    counts = {pid: dict.fromkeys(REACTION_TYPES, 0) for pid in post_ids}
    if post_ids:
        rows = db.session.execute(
            select(Reaction.post_id, Reaction.type, func.count())
            .where(Reaction.post_id.in_(post_ids)).group_by(Reaction.post_id, Reaction.type))
        for post_id, type_, n in rows:
            counts[post_id][type_] = n
    return counts


def comment_counts(post_ids):
    """Return ``{post_id: number of comments}``."""
    counts = dict.fromkeys(post_ids, 0)
    if post_ids:
        rows = db.session.execute(select(Comment.post_id, func.count())
                                  .where(Comment.post_id.in_(post_ids)).group_by(Comment.post_id))
        counts.update(rows.all())
    return counts


def viewer_reactions(post_ids, viewer_id):
    """Return ``{post_id: type}`` of the viewer's reactions among *post_ids*."""
    if not post_ids or viewer_id is None:
        return {}
    rows = db.session.execute(select(Reaction.post_id, Reaction.type)
                              .where(Reaction.post_id.in_(post_ids), Reaction.user_id == viewer_id))
    return dict(rows.all())


def like_counts(comment_ids):
    """Return ``{comment_id: number of likes}``."""
    counts = dict.fromkeys(comment_ids, 0)
    if comment_ids:
        rows = db.session.execute(select(CommentLike.comment_id, func.count())
                                  .where(CommentLike.comment_id.in_(comment_ids))
                                  .group_by(CommentLike.comment_id))
        counts.update(rows.all())
    return counts


def follow_counts(user_ids):
    """Return ``{user_id: (followers, following)}``."""
    followers = dict.fromkeys(user_ids, 0)
    following = dict.fromkeys(user_ids, 0)
    if user_ids:
        followers.update(db.session.execute(
            select(Follow.followee_id, func.count()).where(Follow.followee_id.in_(user_ids))
            .group_by(Follow.followee_id)).all())
        following.update(db.session.execute(
            select(Follow.follower_id, func.count()).where(Follow.follower_id.in_(user_ids))
            .group_by(Follow.follower_id)).all())
    return {uid: (followers[uid], following[uid]) for uid in user_ids}


def followed_by_viewer(user_ids, viewer_id):
    """Return the subset of *user_ids* the viewer follows."""
    if not user_ids or viewer_id is None:
        return set()
    return set(db.session.scalars(select(Follow.followee_id).where(
        Follow.follower_id == viewer_id, Follow.followee_id.in_(user_ids))))

"""Read-only facts a page shows that no API answer carries."""
from sqlalchemy import select

from app.extensions import db
from app.models import CommentLike


def liked_by(viewer_id, comment_ids):
    """Return the subset of *comment_ids* the viewer has liked (for the like buttons' state)."""
    if not comment_ids:
        return set()
    return set(db.session.scalars(select(CommentLike.comment_id).where(
        CommentLike.user_id == viewer_id, CommentLike.comment_id.in_(comment_ids))))

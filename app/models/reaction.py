"""Reactions: at most one per user per post, of six types."""
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

REACTION_TYPES = ("like", "love", "haha", "wow", "sad", "angry")


class Reaction(db.Model):
    __tablename__ = "reactions"
    __table_args__ = (
        CheckConstraint("type IN ('like', 'love', 'haha', 'wow', 'sad', 'angry')", name="type"),
        Index("ix_reactions_post_type", "post_id", "type"),
    )

    post_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

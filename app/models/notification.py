"""Notifications of what others did to a user or their posts, and the user's Web Push
subscriptions (one per browser)."""
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, new_id, utcnow

NOTIFICATION_TYPES = ("follow", "comment", "reaction", "comment_like", "mention")


class Notification(db.Model):
    """One thing someone did that concerns *user_id*, newest first by (created_at, id)."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("type IN ('follow', 'comment', 'reaction', 'comment_like', 'mention')",
                        name="type"),
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index("ix_notifications_user_read", "user_id", "read"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    actor_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    # A post's or comment's notifications go with it: their links would lead nowhere.
    post_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("posts.id", ondelete="CASCADE"), nullable=True)
    comment_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("comments.id", ondelete="CASCADE"), nullable=True)
    # What makes two notifications the same news ("reaction:<actor>:<post>"): unique, so a
    # reaction changed, removed and re-added, or a follow undone and redone, notifies once,
    # even when two requests race.
    dedupe_key: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read: Mapped[bool] = mapped_column(Boolean, default=False)

    actor = relationship("User", foreign_keys=[actor_id], lazy="joined", innerjoin=True)


class PushSubscription(db.Model):
    """A browser's ``PushSubscription``: where to send a user's pushes, and the keys to
    encrypt them with (RFC 8291). One row per endpoint: a browser that signs in as someone
    else moves its subscription to them."""

    __tablename__ = "push_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(2048), unique=True)
    p256dh: Mapped[str] = mapped_column(Text)
    auth: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

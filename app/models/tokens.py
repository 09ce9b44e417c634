"""Token state kept in the database when there is no Redis: revoked sessions, stream tickets
and used refresh tokens."""
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime


class RevokedSession(db.Model):
    """A login session (the ``sid`` claim shared by its access and refresh tokens) ended by logout."""

    __tablename__ = "revoked_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class StreamTicket(db.Model):
    """A single-use ticket that opens one stream within 30 seconds."""

    __tablename__ = "stream_tickets"

    ticket: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    sid: Mapped[str] = mapped_column(String(64))
    token_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class UsedRefreshToken(db.Model):
    """A refresh token (its ``jti``) already exchanged: its primary key lets only one refresh
    spend it, however many race."""

    __tablename__ = "used_refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

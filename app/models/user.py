"""Users: UUID ids, usernames unique without regard to case, Argon2 password hashes
(made and checked by :mod:`app.auth.passwords`)."""
from datetime import datetime

from sqlalchemy import Boolean, String, false
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, new_id, utcnow


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(30))
    # Lower-cased copy with the unique index: "Alice" and "alice" are one account.
    username_key: Mapped[str] = mapped_column(String(30), unique=True)
    display_name: Mapped[str] = mapped_column(String(50))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Has LARGE_AUTHOR_FOLLOWERS followers or more: events go once to the large-author
    # channel instead of to every follower's feed (app/services/audience.py).
    large_author: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def __init__(self, username, password_hash, display_name=None):
        super().__init__(username=username, username_key=username.lower(),
                         display_name=display_name or username, password_hash=password_hash)

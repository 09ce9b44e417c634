"""Answers kept for retried writes: one row per user and ``Idempotency-Key``."""
from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime


class IdempotencyKey(db.Model):
    """A write request made with an ``Idempotency-Key``, and its answer once it has one.

    The row is inserted in the same transaction as the write it guards, so a committed write
    always has its row; ``status`` is null while the answer is not stored yet (the request is
    running, or was cut off after its write committed).
    """

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    headers: Mapped[str | None] = mapped_column(Text)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

"""Events committed with their change and not yet known to be published."""
from datetime import datetime

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, new_id


class OutboxEntry(db.Model):
    """One event, inserted in the transaction of the write it announces and deleted once
    published (:mod:`app.services.outbox`).

    A row whose lease has run out belongs to a process that stopped between the commit and the
    publish; the relay takes it over.
    """

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)  # the event's fields, as JSON
    channels: Mapped[str] = mapped_column(Text)  # JSON list of channels named outright
    author_id: Mapped[str | None] = mapped_column(String(36))  # also to the author's followers
    large: Mapped[bool] = mapped_column(Boolean, default=False)  # by the large-author channel
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

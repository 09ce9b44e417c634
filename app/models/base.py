"""Column helpers shared by the models."""
import uuid
from datetime import datetime, timezone

from sqlalchemy import DateTime, TypeDecorator


def new_id():
    """Return a new random UUID as the string the API shows."""
    return str(uuid.uuid4())


def utcnow():
    """Return the current UTC time as an aware datetime."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A datetime stored naive in UTC and always read back aware, on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None

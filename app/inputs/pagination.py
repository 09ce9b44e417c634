"""Opaque page cursors: ``(created_at, id)`` of the last row, base64url-encoded."""
import base64
import uuid
from datetime import datetime, timezone

from app.errors import ValidationFailed


def encode_cursor(cursor):
    """Return the opaque string of a ``(created_at, id)`` pair, or None for no next page."""
    if cursor is None:
        return None
    created_at, row_id = cursor
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value, name):
    """Return the ``(created_at, id)`` pair of a cursor, None for none; 422 when malformed."""
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        created_at, row_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created_at)
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=timezone.utc)
        return created_at.astimezone(timezone.utc), str(uuid.UUID(row_id))
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise ValidationFailed(f"{name} is not a cursor this API returned",
                               fields={name: "invalid cursor"}) from None

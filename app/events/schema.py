"""Event types and payloads of the contract, and the control messages of every stream."""
import time
from dataclasses import dataclass, field

import orjson

NEW_POST = "new_post"
POST_UPDATED = "post_updated"
POST_DELETED = "post_deleted"
POST_REACTION = "post_reaction"
NEW_COMMENT = "new_comment"
COMMENT_DELETED = "comment_deleted"
COMMENT_LIKE = "comment_like"
TYPING = "typing"
COMMENT_COUNT = "comment_count"  # on feeds only, conflated (app/services/conflation.py)
NOTIFICATION = "notification"  # on the recipient's own feed only
# Internal, on one reader's feed channel: they started or stopped following a large author
# (app/services/audience.py). Kept in history like an event, so a stream that resumes or
# repairs a gap applies it too; a stream applies it and never sends it to its client.
FOLLOWS_CHANGED = "_follows"
# Between processes only, on the ``signouts`` channel no client can open: a login session ended.
SESSION_ENDED = "session_ended"

# Events that get no id and no history: a stream that missed one has nothing to resume.
EPHEMERAL = frozenset((TYPING, SESSION_ENDED))

# Control messages: never stored, never carry an id.
CONNECTION_ESTABLISHED = "connection_established"
PING = "ping"
PONG = "pong"
RESYNC_REQUIRED = "resync_required"
TOKEN_EXPIRED = "token_expired"
ERROR = "error"

# Stands where the per-channel id goes, so one encoding serves every channel of an event.
_ID_MARK = "\x00id\x00"
_ID_MARK_JSON = orjson.dumps(_ID_MARK)


def now_ms():
    """Return the current time in milliseconds since the epoch."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Event:
    """One change, built once and published to every channel concerned.

    :param type: one of the event types above.
    :param payload: the type's fields (``post``, ``post_id``…), JSON-serialisable.
    :param ts: publish time in ms since the epoch.
    :param author: on the large-author channel only: whose followers the event is for. It
        travels in the wire header (``<type>@<author>``), so a worker routes it without
        decoding the JSON.
    """

    type: str
    payload: dict
    ts: int = field(default_factory=now_ms)
    author: str | None = None

    @property
    def wire_type(self):
        """Return the type as the wire header carries it: with ``@<author>`` when routed."""
        return f"{self.type}@{self.author}" if self.author else self.type

    @property
    def replayable(self):
        """Return whether the event gets an id and is kept for resume (typing is not)."""
        return self.type not in EPHEMERAL

    def encode(self):
        """Return the event's JSON as ``(head, tail)``: ``head + id + tail`` for each channel.

        Ephemeral events have no id, so their whole JSON is the head and the tail is empty.
        """
        if not self.replayable:
            return orjson.dumps({"type": self.type, "ts": self.ts, **self.payload}), b""
        body = orjson.dumps({"type": self.type, "id": _ID_MARK, "ts": self.ts, **self.payload})
        head, tail = body.split(_ID_MARK_JSON, 1)
        return head + b'"', b'"' + tail


def control(type_, **fields):
    """Return the JSON bytes of a control message such as ``ping`` or ``resync_required``."""
    # orjson's result keeps the 4 KiB buffer it was written in; a stream holds its last
    # control message (a ping) while it waits, so keep an exact-size copy instead.
    return bytes(memoryview(orjson.dumps({"type": type_, **fields})))

"""The bytes an event travels as between processes, and the parsed form streams consume.

A published event is ``b"<type> <id> <ts> <json>"``: the header lets a worker route, order
and frame the event without decoding its JSON, so each event is encoded once, by its publisher.
Ephemeral events carry ``-`` as their id. On the large-author channel the type is
``<type>@<author id>``: the worker hands the event to the streams that follow that author.

A feed stream that follows a large author is at two places at once: in its own feed channel
and in the large-author channel. The ids it sends are then compound, ``<feed id>.<large id>``
(:class:`Cursor`), so one ``Last-Event-ID`` resumes both.
"""
import re
import secrets
from dataclasses import dataclass

NO_ID = "-"

# What ids of ours look like, in ASCII only: ``str.isdigit`` and ``int`` also take "²", "٣"
# or "９", so an id from a client is matched against this before any of it is converted.
# 18 digits keep the sequence number within a 64-bit integer and far beyond any channel's.
_EVENT_ID = re.compile(r"([0-9A-Za-z]{1,40})-([0-9]{1,18})", re.ASCII)
_CURSOR = re.compile(r"([0-9A-Za-z]{1,40})-([0-9]{1,18})(?:\.([0-9A-Za-z]{1,40})-([0-9]{1,18}))?",
                     re.ASCII)


def new_epoch():
    """Return a fresh epoch: it changes whenever a channel's history is lost."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a channel: its history epoch and the sequence number of an event (0: none)."""

    epoch: str
    seq: int

    @property
    def event_id(self):
        """Return the id clients see and echo back: ``<epoch>-<seq>``."""
        return f"{self.epoch}-{self.seq}"

    @staticmethod
    def parse(event_id):
        """Return the position an event id names, or None when it is not one of ours.

        Any text may come in (a ``Last-Event-ID`` header, a query, a cursor): what is not an
        ASCII ``<epoch>-<seq>`` is None, which resuming streams answer with a fresh start.
        """
        match = _EVENT_ID.fullmatch(event_id.strip()) if isinstance(event_id, str) else None
        if match is None:
            return None
        return Position(match[1], int(match[2]))


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a stream is: its channel's position, and the large-author channel's (or None).

    A stream with no large-author part uses plain ``<epoch>-<seq>`` ids, as every post stream
    does; one with it sends ``<feed epoch>-<seq>.<large epoch>-<seq>``.
    """

    own: Position
    large: Position | None = None

    @property
    def event_id(self):
        """Return the id that names this place."""
        if self.large is None:
            return self.own.event_id
        return f"{self.own.event_id}.{self.large.event_id}"

    @staticmethod
    def parse(event_id):
        """Return the cursor an id names, or None when it is not one of ours (any text)."""
        match = _CURSOR.fullmatch(event_id.strip()) if isinstance(event_id, str) else None
        if match is None:
            return None
        large = Position(match[3], int(match[4])) if match[3] else None
        return Cursor(Position(match[1], int(match[2])), large)


class Message:
    """One event (or control message) as a stream delivers it.

    ``data`` is the event's JSON, shared by every stream of the process; ``framed`` caches one
    transport's framing of it so that 5,000 streams of one channel frame it once. ``position``
    is parsed once too: a stream that delivers the message takes it as its own position.
    """

    __slots__ = ("type", "event_id", "epoch", "seq", "ts", "data", "position", "author",
                 "_frames")

    def __init__(self, type_, data, event_id=None, ts=None, author=None):
        self.type = type_
        self.data = data
        self.event_id = event_id
        self.ts = ts
        self.author = author  # set on the large-author channel's events only
        position = self.position = Position.parse(event_id) if event_id else None
        self.epoch = position.epoch if position else None
        self.seq = position.seq if position else None
        self._frames = None

    def framed(self, framer):
        """Return ``framer(self)``, computed once per message and framer."""
        frames = self._frames
        if frames is None:
            frames = self._frames = {}
        frame = frames.get(framer)
        if frame is None:
            frame = frames[framer] = framer(self)
        return frame

    def stamped(self, event_id):
        """Return a copy of this event that carries *event_id* instead (a compound id).

        The JSON holds the id as its second field (``{"type":…,"id":"<id>",…``), so one
        replace of the first ``"id":"<id>"`` renames it.
        """
        old = b'"id":"%s"' % self.event_id.encode()
        data = self.data.replace(old, b'"id":"%s"' % event_id.encode(), 1)
        copy = Message(self.type, data, self.event_id, self.ts, self.author)
        copy.event_id = event_id
        return copy

    def __repr__(self):
        return f"Message({self.type!r}, id={self.event_id!r})"


def pack(event_type, event_id, ts, data):
    """Return the wire bytes of an event (*event_type* as :attr:`Event.wire_type` gives it)."""
    return b"%s %s %d %s" % (event_type.encode(), (event_id or NO_ID).encode(), ts, data)


def unpack(raw):
    """Return the :class:`Message` of wire bytes (no JSON decoding)."""
    event_type, event_id, ts, data = raw.split(b" ", 3)
    event_id = event_id.decode()
    event_type, _, author = event_type.decode().partition("@")
    return Message(event_type, data, None if event_id == NO_ID else event_id, int(ts),
                   author or None)

"""An incremental parser of ``text/event-stream``, as a browser's EventSource parses it.

Lines end at CRLF, LF or CR, even when a CRLF straddles two reads; ``:`` starts a comment; a
blank line dispatches the event when it had at least one ``data:`` line (WHATWG HTML, "Event
stream interpretation"). The parser does no I/O: feed it bytes, get events back.
"""
import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its type (``message`` when unnamed), data, and last event id."""

    event: str
    data: str
    id: str | None = None

    def json(self):
        """Return the data decoded as JSON."""
        return json.loads(self.data)


class SSEParser:
    """Turn chunks of an event stream into :class:`ServerSentEvent` objects.

    ``last_event_id`` and ``retry`` (milliseconds, or None) keep the latest values the stream
    set, as EventSource does.
    """

    def __init__(self):
        self._buffer = b""
        self._skip_lf = False  # the last chunk ended in CR: a leading LF is the rest of a CRLF
        self._data = []
        self._event = ""
        self.last_event_id = None
        self.retry = None

    def feed(self, chunk):
        """Consume *chunk* (bytes); return the events it completed, in order."""
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        buffer = self._buffer + chunk
        events, start = [], 0
        while True:
            ends = [i for i in (buffer.find(b"\r", start), buffer.find(b"\n", start)) if i >= 0]
            if not ends:
                break
            end = min(ends)
            line = buffer[start:end].decode("utf-8", "replace")
            start = end + 1
            if buffer[end:start] == b"\r":
                if start == len(buffer):
                    self._skip_lf = True
                elif buffer[start:start + 1] == b"\n":
                    start += 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def _line(self, line):
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self.last_event_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self):
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(event or "message", "\n".join(data), self.last_event_id)


def parse_sse(raw):
    """Return the events of a whole event stream (bytes or str)."""
    return SSEParser().feed(raw.encode() if isinstance(raw, str) else raw)

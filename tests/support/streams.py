"""Read SSE responses of the Flask test client chunk by chunk."""
import gevent

from tests.support.clients import parse_sse


class TestStream:
    """An open SSE response of the test client; ``next_events()`` reads what comes next."""

    __test__ = False  # not a test class

    def __init__(self, response):
        self.response = response
        self.status = response.status_code
        self._chunks = iter(response.response) if self.status == 200 else iter(())
        self.raw = b""
        self.events = []

    def next_events(self, timeout=5):
        """Wait for the next chunk the server writes; return its events."""
        with gevent.Timeout(timeout, AssertionError("no SSE chunk in time")):
            chunk = next(self._chunks)
        self.raw += chunk
        events = parse_sse(chunk.decode())
        self.events.extend(events)
        return events

    def until(self, event_type, timeout=5):
        """Read until an event of *event_type* arrives; return it."""
        with gevent.Timeout(timeout, AssertionError(f"no {event_type} in time: {self.events}")):
            while True:
                for event in self.next_events(timeout):
                    if event["event"] == event_type:
                        return event

    def close(self):
        """Close the response (the server's stream ends and frees its slot)."""
        self.response.close()


def open_stream(client, path, **kwargs):
    """Open an SSE stream with the test client without buffering it."""
    return TestStream(client.get(path, buffered=False, **kwargs))

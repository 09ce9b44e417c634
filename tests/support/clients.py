"""Real clients for real servers: a REST user and an SSE reader running in a greenlet."""
import time

import gevent
import orjson
import requests

from feedclient import SSEParser
from tests.support.sessions import session


class RestUser:
    """A registered user of a running server."""

    def __init__(self, base_url, username, password="password123"):
        self.base_url = base_url
        self.http = session()
        response = self.http.post(f"{base_url}/api/auth/register",
                                  json={"username": username, "password": password}, timeout=10)
        assert response.status_code == 201, response.text
        data = response.json()
        self.id = data["user"]["id"]
        self.username = username
        self.token = data["access_token"]
        self.refresh_token = data["refresh_token"]

    def call(self, method, path, base_url=None, **kwargs):
        """Send an authenticated request (to another server of the deployment if given)."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"{base_url or self.base_url}{path}", headers=headers,
                                 timeout=kwargs.pop("timeout", 10), **kwargs)

    def post(self, content="hello"):
        """Write a post; return its JSON."""
        response = self.call("POST", "/api/posts", json={"content": content})
        assert response.status_code == 201, response.text
        return response.json()

    def follow(self, other):
        """Follow *other*."""
        assert self.call("PUT", f"/api/users/{other.username}/follow").status_code == 200


def parse_sse(text):
    """Return the events of an SSE text: dicts with ``event``, ``data`` (decoded) and, when the
    event's own block named one, ``id``.

    feedclient's parser reads the stream; each block gets a parser of its own so that an event
    without an ``id:`` line (typing, control messages) shows none, not the last one seen.
    """
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        for event in SSEParser().feed(block.encode() + b"\n\n"):
            fields = {"event": event.event, "data": orjson.loads(event.data)}
            if event.id is not None:
                fields["id"] = event.id
            events.append(fields)
    return events


class Waiting:
    """Waiting helpers over ``events`` (``(received at, item)``) and ``of_type()``."""

    transport = "sse"

    def wait_for(self, predicate, timeout=10):
        """Wait until *predicate(self)* is true; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate(self)
            if result:
                return result
            gevent.sleep(0.02)
        raise AssertionError(f"{self.transport}: timed out; received {[e for _, e in self.events]}")

    def wait_type(self, event_type, count=1, timeout=10):
        """Wait for *count* events of *event_type*; return them."""
        return self.wait_for(lambda r: len(r.of_type(event_type)) >= count
                             and r.of_type(event_type), timeout)

    @property
    def last_id(self):
        """Return the id of the last received event that had one."""
        ids = [e["id"] for _, e in self.events if "id" in e]
        return ids[-1] if ids else None


class SSEReader(Waiting):
    """Read an SSE stream in a greenlet; ``events`` fills as they arrive.

    Each item is ``(received at, {"id"?, "event", "data"})``.
    """

    def __init__(self, url, token=None, last_event_id=None, params=None):
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.response = requests.get(url, headers=headers, params=params, stream=True, timeout=30)
        self.status = self.response.status_code
        self.events = []
        self.ended = False
        self._greenlet = gevent.spawn(self._read) if self.status == 200 else None

    @property
    def local_port(self):
        """Return this end's port of the stream's connection (``procs.worker_of_peers`` tells
        which worker serves it)."""
        return self.response.raw.connection.sock.getsockname()[1]

    def _read(self):
        buffer = b""
        try:
            for chunk in self.response.iter_content(chunk_size=None):
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    now = time.time()
                    for event in parse_sse(block.decode() + "\n\n"):
                        self.events.append((now, event))
        except (requests.RequestException, OSError, AttributeError):
            pass
        self.ended = True

    def of_type(self, event_type):
        """Return the data of the received events of *event_type*."""
        return [e["data"] for _, e in self.events if e.get("event") == event_type]

    def close(self):
        """Close the connection."""
        if self._greenlet is not None:
            self._greenlet.kill()
        self.response.close()


class Subscriber(Waiting):
    """A client of one channel over one transport, collecting the JSON objects it receives.

    ``events`` holds ``(received at, object)``; subclasses fill it from a greenlet.
    """

    def __init__(self):
        self._received = []
        self.ended = False
        self.status = None

    @property
    def events(self):
        """Return ``(received at, object)`` of everything received so far."""
        return self._received

    def of_type(self, event_type):
        """Return the received objects of *event_type*."""
        return [e for _, e in self.events if e.get("type") == event_type]

    def close(self):
        """Stop receiving."""


class SSESubscriber(Subscriber):
    """The SSE transport, as :class:`SSEReader`."""

    transport = "sse"

    def __init__(self, base_url, path, token, last_event_id=None, params=None):
        super().__init__()
        self.reader = SSEReader(f"{base_url}/stream/{path}", token=token,
                                last_event_id=last_event_id, params=params)
        self.status = self.reader.status

    @property
    def events(self):
        return [(received, fields["data"]) for received, fields in self.reader.events]

    @property
    def ended(self):
        return self.reader.ended

    @ended.setter
    def ended(self, value):
        pass  # the reader knows

    def close(self):
        self.reader.close()


class WSSubscriber(Subscriber):
    """The WebSocket transport, with websocket-client."""

    transport = "ws"

    def __init__(self, base_url, path, token, last_event_id=None, **options):
        import websocket

        super().__init__()
        url = "ws" + base_url.removeprefix("http") + f"/ws/{path}?token={token}"  # wss for https
        if last_event_id:
            url += f"&last_event_id={last_event_id}"
        self.close_code = None
        try:
            self.ws = websocket.create_connection(url, timeout=30, **options)
            self.status = 101
        except websocket.WebSocketBadStatusException as exc:
            self.ws, self.status = None, exc.status_code
            return
        self._greenlet = gevent.spawn(self._read)

    def _read(self):
        import websocket

        try:
            while True:
                opcode, data = self.ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                    break
                self._received.append((time.time(), orjson.loads(data)))
        except (websocket.WebSocketException, OSError):
            pass
        self.ended = True

    def send(self, obj):
        """Send one JSON message."""
        self.ws.send(obj if isinstance(obj, str) else orjson.dumps(obj).decode())

    def close(self):
        if self.ws is not None:
            self._greenlet.kill()
            self.ws.close()


class PollSubscriber(Subscriber):
    """The long-poll transport: a chain of requests, each passing the last cursor."""

    transport = "poll"

    def __init__(self, base_url, path, token, last_event_id=None, timeout=5):
        super().__init__()
        self.url = f"{base_url}/poll/{path}"
        self.http = session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.cursor = last_event_id
        self.timeout = timeout
        first = self._poll(timeout=0)
        self.status = first.status_code
        if self.status == 200:
            self._greenlet = gevent.spawn(self._loop)

    def _poll(self, timeout):
        params = {"timeout": timeout}
        if self.cursor:
            params["cursor"] = self.cursor
        response = self.http.get(self.url, params=params, timeout=timeout + 10)
        if response.status_code == 200:
            body = response.json()
            now = time.time()
            self._received.extend((now, e) for e in body["events"])
            self.cursor = body["cursor"]
        return response

    def _loop(self):
        try:
            while self._poll(self.timeout).status_code == 200:
                pass
        except requests.RequestException:
            pass
        self.ended = True

    def close(self):
        if self.status == 200:
            self._greenlet.kill()
        self.http.close()


SUBSCRIBERS = {"sse": SSESubscriber, "ws": WSSubscriber, "poll": PollSubscriber}


def foreign_event_ids(digits=10_000):
    """Return resume ids that are not ours, each of which must get a fresh start.

    Unicode digits pass ``str.isdigit`` ("²" even fails ``int``), and *digits* makes a huge
    number: a real server's request line holds about 4,000 bytes, so callers choose.
    """
    return ["ab-²", "1-٣", "９-9", "-1-1", "1-1e9", "ab-" + "9" * digits, "ab-1\x00", "ab--1",
            "ab-", "-", " "]

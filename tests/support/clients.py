"""Real clients for real servers: a REST user and an SSE reader running in a greenlet."""
import time

import gevent
import orjson
import requests


class RestUser:
    """A registered user of a running server."""

    def __init__(self, base_url, username, password="password123"):
        self.base_url = base_url
        self.http = requests.Session()
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
    """Return the events of an SSE text: dicts with ``id``, ``event`` and ``data`` (decoded)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            fields["data"] = orjson.loads(fields["data"])
            events.append(fields)
    return events


class SSEReader:
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

    def wait_for(self, predicate, timeout=10):
        """Wait until *predicate(self)* is true; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate(self)
            if result:
                return result
            gevent.sleep(0.02)
        raise AssertionError(f"timed out; received: {[e for _, e in self.events]}")

    def wait_type(self, event_type, count=1, timeout=10):
        """Wait for *count* events of *event_type*; return their data."""
        return self.wait_for(lambda r: len(r.of_type(event_type)) >= count
                             and r.of_type(event_type), timeout)

    @property
    def last_id(self):
        """Return the id of the last received event that had one."""
        ids = [e["id"] for _, e in self.events if "id" in e]
        return ids[-1] if ids else None

    def close(self):
        """Close the connection."""
        if self._greenlet is not None:
            self._greenlet.kill()
        self.response.close()

"""End-to-end smoke check of a running server: ``python -m app.smoke --url http://127.0.0.1:8000``.

Registers two users, makes one follow the other, opens the follower's feed over SSE, posts as
the author, and prints OK with the measured latency, or what failed. Standard library only,
so it runs against any deployment from anywhere.
"""
import argparse
import http.client
import json
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit


class SmokeFailure(Exception):
    """A step of the smoke check failed; the message says which and why."""


def call(base, method, path, token=None, body=None):
    """Send a JSON request; return the decoded answer or raise :class:`SmokeFailure`."""
    request = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SmokeFailure(f"{method} {path} answered {exc.code}: {exc.read()[:300]!r}") from None
    except OSError as exc:
        raise SmokeFailure(f"{method} {path} failed: {exc} (is the server running?)") from None


def register(base, stem):
    """Register a fresh user; return ``(username, access token)``."""
    username = f"{stem}_{secrets.token_hex(4)}"
    answer = call(base, "POST", "/api/auth/register",
                  body={"username": username, "password": secrets.token_urlsafe(12)})
    return username, answer["access_token"]


class FeedReader(threading.Thread):
    """Read a feed stream over SSE and note when each event arrives."""

    def __init__(self, base, token):
        super().__init__(daemon=True)
        parts = urlsplit(base)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=15)
        self.connection.request("GET", "/stream/feed", headers={
            "Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
        self.response = self.connection.getresponse()
        if self.response.status != 200:
            raise SmokeFailure(f"GET /stream/feed answered {self.response.status}: "
                               f"{self.response.read()[:300]!r}")
        self.events = []
        self.arrived = threading.Condition()

    def run(self):
        data = None
        for raw in self.response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                data = json.loads(line[5:].strip())
            elif not line and data is not None:
                with self.arrived:
                    self.events.append((time.time(), data))
                    self.arrived.notify_all()
                data = None

    def wait_for(self, predicate, timeout):
        """Return the first ``(arrival, event)`` matching *predicate*, or None after *timeout*."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for item in self.events:
                    if predicate(item[1]):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.arrived.wait(remaining)


def run(base, timeout=5.0):
    """Run the check against *base*; return a one-line report or raise :class:`SmokeFailure`."""
    health = call(base, "GET", "/healthz")
    author, author_token = register(base, "smoke_author")
    _, reader_token = register(base, "smoke_reader")
    call(base, "PUT", f"/api/users/{author}/follow", token=reader_token)
    reader = FeedReader(base, reader_token)
    reader.start()
    if reader.wait_for(lambda e: e.get("type") == "connection_established", timeout) is None:
        raise SmokeFailure("the feed stream sent no connection_established")
    sent = time.time()
    post = call(base, "POST", "/api/posts", token=author_token, body={"content": "smoke test"})
    got = reader.wait_for(lambda e: e.get("type") == "new_post"
                          and e["post"]["id"] == post["id"], timeout)
    if got is None:
        raise SmokeFailure(f"the follower's feed did not receive the post within {timeout:g} s")
    arrived, event = got
    return (f"OK: new_post reached the follower's feed {1000 * (arrived - sent):.1f} ms after the "
            f"POST was sent ({arrived * 1000 - event['ts']:.1f} ms after publish); "
            f"broker {health['broker']}, database {health['database']}")


def main(argv=None):
    """Parse arguments, run the check, print the outcome; exit 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for events")
    args = parser.parse_args(argv)
    try:
        print(run(args.url.rstrip("/"), args.timeout))
    except SmokeFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Lean load clients for many streams at once, and a publisher to drive them.

Each client is raw gevent sockets (:mod:`tests.support.rawhttp`; no requests, no
websocket-client): one process can hold a thousand streams while the server under test keeps
the other core. Every client keeps a :class:`~tests.support.accounting.StreamStats` of its
stream.

A client is *logical*: it may reconnect (resuming with the last id it saw) and its accounting
carries across connections, which is how a resume that drops or repeats an event shows up.
"""
import base64
import os
import random
import time
from urllib.parse import quote

import gevent
import gevent.pool
import orjson
import requests

from feedclient import SSEParser
from tests.support.accounting import StreamStats
from tests.support.rawhttp import Closed, Conn, client_frame, read_frame, request_bytes


# -- stream clients -----------------------------------------------------------------------------


class StreamClient:
    """A logical client of one channel over one transport; reconnects carry its accounting.

    :param base: ``(host, port)`` of the server.
    :param channel_path: ``feed`` or ``post/<id>``.
    :param token: the access token.
    """

    transport = None

    def __init__(self, base, channel_path, token, label=None, source=None, keep_payloads=False):
        self.host, self.port = base
        self.channel_path = channel_path
        self.token = token
        self.label = label
        self.source = source
        self.keep_payloads = keep_payloads
        self.stats = StreamStats()
        self.connected_at = None  # when connection_established arrived (this connection)
        self.opened_at = None  # when this connection was attempted
        self.conn = None
        self.status = None
        self.close_code = None
        self.ended_at = None  # when the server ended the current connection
        self.end_reason = None
        self.connections = 0
        self.refusals = []  # statuses of refused attempts
        self.last_messages = []  # control messages (type, received at)
        self.post_ids = []  # ids of the posts of new_post events, in arrival order
        self.comment_ids = []  # ids of the comments of new_comment events
        self.typing = []  # typing events (ephemeral: no id)
        self.start_id = None  # see begin_at
        self.auto_reconnect = None  # (min, max) seconds before reconnecting, or None: stay down
        self.drops = []  # when an established connection ended (auto_reconnect clients)
        self.reconnects = []  # (dropped at, established again at)
        self._greenlet = None
        self.live = True

    @property
    def last_id(self):
        """Return the id to resume from: the last event seen, or the starting position."""
        return self.stats.ids[-1] if self.stats.ids else self.start_id

    def begin_at(self, event_id):
        """Give the client a starting position, as the pages give theirs (the channel's head).

        A client that has seen no event has nothing to resume from: were it to reconnect
        fresh, events published while it was away would be skipped (the contract promises
        resume only from an id the client saw). Our pages embed the head id for this reason.
        """
        self.start_id = event_id
        self.stats.begin_at(event_id)
        return self

    @property
    def local_port(self):
        return self.conn.local_port if self.conn else None

    @property
    def up(self):
        """Return whether the current connection is open and established."""
        return self.connected_at is not None and self.ended_at is None

    def start(self, resume=None):
        """Connect (resuming from the last id when *resume*; by default when there is one)."""
        if resume is None:
            resume = self.last_id is not None
        self.stop()
        self.connected_at = self.ended_at = self.end_reason = self.close_code = None
        self.opened_at = time.time()
        if not resume:
            self.stats.fresh()
        self._greenlet = gevent.spawn(self._run, self.last_id if resume else None)
        return self

    def stop(self, reset=False):
        """Close the current connection, as a client that goes away."""
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.kill(block=True, timeout=2)
        if self.conn is not None:
            (self.conn.reset if reset else self.conn.close)()
            self.conn = None

    def wait_established(self, timeout=15):
        """Wait for ``connection_established``; return the seconds it took, or None if refused."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected_at is not None:
                return self.connected_at - self.opened_at
            if self.ended_at is not None:
                return None
            gevent.sleep(0.01)
        return None

    def _run(self, last_event_id):
        while True:
            try:
                self.conn = Conn(self.host, self.port, source=self.source)
                self.connections += 1
                self._stream(last_event_id)
                self.end_reason = "ended"
            except Closed as exc:
                self.end_reason = str(exc)
            except OSError as exc:
                self.end_reason = f"{type(exc).__name__}: {exc}"
            except Refused as exc:
                self.refusals.append(exc.status)
                self.end_reason = f"refused {exc.status}"
            finally:
                self.ended_at = time.time()
                if self.conn is not None:
                    self.conn.close()
            if not self.auto_reconnect:
                return
            # As EventSource does: wait the retry delay, then resume from the last id seen.
            if self.connected_at is not None:
                self.drops.append(self.ended_at)
            gevent.sleep(random.uniform(*self.auto_reconnect))
            self.connected_at = self.ended_at = self.close_code = None
            self.opened_at = time.time()
            last_event_id = self.last_id
            if last_event_id is None:
                self.stats.fresh()

    def _on_object(self, obj, received_at):
        kind = obj.get("type")
        if kind == "connection_established":
            self.connected_at = received_at
            if len(self.drops) > len(self.reconnects):
                self.reconnects.append((self.drops[-1], received_at))
        elif "id" not in obj:
            self.last_messages.append((kind, received_at))
        self.stats.on_message(obj, received_at, live=self.live)
        if kind == "new_post":
            self.post_ids.append(obj["post"]["id"])
        elif kind == "new_comment":
            self.comment_ids.append(obj["comment"]["id"])
        elif kind == "typing":
            self.typing.append(obj)
        if self.keep_payloads and obj.get("id"):
            self.stats.payloads.append((obj["id"], obj))

    def _stream(self, last_event_id):
        raise NotImplementedError


class Refused(Exception):
    def __init__(self, status, body=b""):
        super().__init__(status)
        self.status, self.body = status, body


class SSEClient(StreamClient):
    """``GET /stream/<channel>``: chunked ``text/event-stream``."""

    transport = "sse"

    def _stream(self, last_event_id):
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        conn = self.conn
        conn.send(request_bytes("GET", f"/stream/{self.channel_path}", f"{self.host}:{self.port}",
                                headers))
        status, response_headers = conn.read_head()
        self.status = status
        if status != 200:
            raise Refused(status, conn.read_body(response_headers))
        chunked = response_headers.get("transfer-encoding", "").lower() == "chunked"
        parser = SSEParser()
        while True:
            if chunked:
                data = conn.read_chunk()
                if not data:
                    return
            else:
                conn.fill()
                data, conn.buffer = conn.buffer, b""
            now = time.time()
            for event in parser.feed(data):
                self._on_object(orjson.loads(event.data), now)


class WSClient(StreamClient):
    """``/ws/<channel>``: a raw RFC 6455 client (no compression offered)."""

    transport = "ws"

    def __init__(self, *args, origin=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.origin = origin

    def _stream(self, last_event_id):
        path = f"/ws/{self.channel_path}?token={self.token}"
        if last_event_id:
            path += f"&last_event_id={quote(last_event_id)}"
        key = base64.b64encode(os.urandom(16)).decode()
        headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
                   "Sec-WebSocket-Version": "13"}
        if self.origin:
            headers["Origin"] = self.origin
        conn = self.conn
        conn.send(request_bytes("GET", path, f"{self.host}:{self.port}", headers))
        status, response_headers = conn.read_head()
        self.status = status
        if status != 101:
            raise Refused(status, conn.read_body(response_headers))
        while True:
            opcode, payload = read_frame(conn)
            if opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                return
            if opcode == 0x1:
                self._on_object(orjson.loads(payload), time.time())
            elif opcode == 0x9:
                conn.send(client_frame(0xA, payload))

    def send_json(self, obj):
        """Send one text frame."""
        self.conn.send(client_frame(0x1, orjson.dumps(obj)))


class PollClient(StreamClient):
    """``GET /poll/<channel>?cursor=&timeout=`` in a chain on one keep-alive connection."""

    transport = "poll"

    def __init__(self, *args, wait=5.0, pause=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.wait = wait
        self.pause = pause  # callable returning seconds to wait between requests
        self.cursor = None
        self.requests = 0
        self.max_batch = 0

    def start(self, resume=None):
        if resume is None:
            resume = self.last_id is not None
        if not resume:
            self.cursor = None
        elif self.cursor is None:
            self.cursor = self.last_id
        return super().start(resume=resume)

    def _stream(self, last_event_id):
        first = True
        while True:
            path = f"/poll/{self.channel_path}?timeout={0 if first else self.wait:g}"
            if self.cursor:
                path += f"&cursor={quote(self.cursor)}"
            try:
                status, body = self._get(path)
            except Closed:
                # Keep-alive connections close when idle: take a new one and ask again.
                self.conn.close()
                self.conn = Conn(self.host, self.port, source=self.source)
                status, body = self._get(path)
            self.requests += 1
            if status != 200:
                raise Refused(status, body)
            now = time.time()
            answer = orjson.loads(body)
            if first:
                self._on_object({"type": "connection_established"}, now)
                first = False
            self.max_batch = max(self.max_batch, len(answer["events"]))
            for obj in answer["events"]:
                self._on_object(obj, now)
                if obj.get("type") == "token_expired":
                    return
            self.cursor = answer["cursor"]
            if self.pause:
                gevent.sleep(self.pause())

    def _get(self, path):
        headers = {"Authorization": f"Bearer {self.token}"}
        self.conn.send(request_bytes("GET", path, f"{self.host}:{self.port}", headers))
        status, headers = self.conn.read_head()
        body = self.conn.read_body(headers)
        if headers.get("connection", "").lower() == "close":
            self.conn.close()
            self.conn = Conn(self.host, self.port, source=self.source)
        return status, body


CLIENTS = {"sse": SSEClient, "ws": WSClient, "poll": PollClient}


def start_all(clients, resume=None, spread=0.0):
    """Start *clients*, spreading the connects over *spread* seconds."""
    for i, client in enumerate(clients):
        client.start(resume=resume)
        if spread and i % 20 == 19:
            gevent.sleep(spread * 20 / max(len(clients), 1))


def wait_established(clients, timeout=30):
    """Wait until every client is connected; return the ones that are not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = [c for c in clients if c.connected_at is None]
        if not waiting:
            return []
        gevent.sleep(0.05)
    return [c for c in clients if c.connected_at is None]


def stop_all(clients):
    for client in clients:
        client.stop()


# -- writers ----------------------------------------------------------------------------------


class Publisher:
    """Send writes at a fixed rate from greenlets, and record every answer.

    :param write: called with the sequence number; returns a ``requests.Response``.
    """

    def __init__(self, write, rate, duration, concurrency=8):
        self.write = write
        self.rate = rate
        self.duration = duration
        self.concurrency = concurrency
        self.results = []  # (n, status, seconds, json or None, answered at)
        self.statuses = {}
        self.errors = []
        self._greenlet = None
        self.started_at = self.ended_at = None
        self._stopping = False

    def start(self):
        self._greenlet = gevent.spawn(self._run)
        return self

    def stop(self):
        self._stopping = True

    def join(self, timeout=None):
        self._greenlet.join(timeout)

    def _run(self):
        pool = gevent.pool.Pool(self.concurrency)
        self.started_at = time.monotonic()
        n = 0
        total = int(self.rate * self.duration)
        while n < total and not self._stopping:
            due = self.started_at + n / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            pool.spawn(self._one, n)
            n += 1
        pool.join()
        self.ended_at = time.monotonic()

    def _one(self, n):
        began = time.monotonic()
        try:
            response = self.write(n)
        except requests.RequestException as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.statuses["error"] = self.statuses.get("error", 0) + 1
            return
        status = response.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        try:
            body = response.json()
        except ValueError:
            body = None
        self.results.append((n, status, time.monotonic() - began, body, time.time()))

    @property
    def achieved_rate(self):
        if not self.ended_at:
            return 0.0
        return len(self.results) / max(self.ended_at - self.started_at, 1e-9)


def jitter(low, high):
    """Return a function that draws a pause between *low* and *high* seconds."""
    return lambda: random.uniform(low, high)

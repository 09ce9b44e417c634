"""Cheap clients on raw asyncio sockets: streams record ``(time, bytes)`` and are parsed later.

A stream's only work per chunk is one append and one ``bytes.count`` (a running total of the
events received, which the closed-loop publisher watches), so the load generator costs a small
fraction of what the server spends on the same delivery.
"""
import asyncio
import base64
import os
import time

import orjson

# Every event object carries "ts" (ours compact, Flask's json with a space); control
# messages (connection_established, ping) do not.
MARK = b'"ts":'


class Tally:
    """Events received by every stream of the process, for the closed-loop publisher."""

    __slots__ = ("events",)

    def __init__(self):
        self.events = 0


class Recorder(asyncio.Protocol):
    """One SSE or WebSocket stream: send the request, then record every chunk with its time."""

    __slots__ = ("request", "tally", "chunks", "count", "transport", "error", "closed_at",
                 "opened")

    def __init__(self, request, tally):
        self.request = request
        self.tally = tally
        self.chunks = []
        self.count = 0
        self.transport = None
        self.error = None
        self.closed_at = None
        self.opened = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        self.chunks.append((time.time(), data))
        n = data.count(MARK)
        if n:
            self.count += n
            self.tally.events += n
        if not self.opened.done():
            self.opened.set_result(True)

    def connection_lost(self, exc):
        self.closed_at = time.time()
        self.error = repr(exc) if exc else None
        if not self.opened.done():
            self.opened.set_result(False)

    def close(self):
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()

    def raw(self):
        """Return everything received, and the ``(end offset, time)`` of every chunk."""
        ends, offset = [], 0
        for at, data in self.chunks:
            offset += len(data)
            ends.append((offset, at))
        return b"".join(data for _, data in self.chunks), ends


def http_get(host, port, path, headers=()):
    """Return the bytes of a GET request."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def sse_request(host, port, path, token=None):
    """Return the request that opens an SSE stream."""
    headers = ["Accept: text/event-stream", "Cache-Control: no-cache"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    return http_get(host, port, path, headers)


def ws_request(host, port, path):
    """Return a WebSocket handshake (no extensions offered: plain text frames)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return http_get(host, port, path, ["Upgrade: websocket", "Connection: Upgrade",
                                       f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"])


async def open_streams(host, port, requests, tally, concurrency=50, wait_first=True,
                       timeout=30.0):
    """Open one :class:`Recorder` per request; return them and how many failed to connect.

    With *wait_first*, each open waits for the first bytes of the answer (our servers answer
    at once with ``connection_established``), which keeps at most *concurrency* handshakes in
    flight; Flask-SSE sends nothing before the first event, so it is opened without waiting.
    """
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    # In the order of *requests*: the caller knows each stream's channel by its index.
    recorders, failed = [Recorder(request, tally) for request in requests], []

    async def one(recorder):
        async with gate:
            try:
                await loop.create_connection(lambda: recorder, host, port)
            except OSError as exc:
                failed.append(repr(exc))
                recorder.error = repr(exc)
                return
            if wait_first:
                try:
                    await asyncio.wait_for(asyncio.shield(recorder.opened), timeout)
                except asyncio.TimeoutError:
                    failed.append("no answer")

    await asyncio.gather(*(one(r) for r in recorders))
    return recorders, failed


class Http:
    """A keep-alive HTTP/1.1 client connection for the REST calls (setup and publishing)."""

    def __init__(self, host, port, token=None):
        self.host, self.port, self.token = host, port, token
        self.reader = self.writer = None
        self.headers = {}

    async def _connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self):
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def call(self, method, path, body=None, token=None, headers=()):
        """Send a request; return ``(status, body bytes)``. Retries once on a stale connection.

        The answer's headers are in ``self.headers`` (lower-case names) until the next call.
        """
        payload = b"" if body is None else orjson.dumps(body)
        token = token or self.token
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(payload)}", *headers]
        if body is not None:
            head.append("Content-Type: application/json")
        if token:
            head.append(f"Authorization: Bearer {token}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        for attempt in (0, 1):
            if self.writer is None:
                await self._connect()
            try:
                self.writer.write(request)
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self):
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        self.headers = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower().decode()] = value.strip().decode()
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                close = True
        if chunked:
            parts = []
            while (size := int((await self.reader.readuntil(b"\r\n")).strip(), 16)):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readexactly(2)
            data = b"".join(parts)
        else:
            data = await self.reader.readexactly(length or 0)
        if close:
            self.close()
        return status, data


class Poller:
    """A long-poll client: a chain of requests, each passing the last cursor.

    It must read each answer to know the next cursor; it keeps ``(time, body)`` and parses
    nothing else until the run is over.
    """

    def __init__(self, host, port, path, token, timeout=25):
        self.http = Http(host, port, token)
        self.path, self.timeout = path, timeout
        self.cursor = None
        self.answers = []  # (time, body bytes)
        self.errors = []
        self.count = 0
        self.task = None

    async def run(self, tally):
        """Poll until cancelled."""
        while True:
            query = f"?timeout={self.timeout}" + (f"&cursor={self.cursor}" if self.cursor else "")
            try:
                status, body = await self.http.call("GET", self.path + query)
            except (OSError, asyncio.IncompleteReadError) as exc:
                self.errors.append(repr(exc))
                await asyncio.sleep(0.5)
                continue
            at = time.time()
            if status != 200:
                start = body.find(b'"message":"')
                reason = body[start + 11:body.find(b'"', start + 11)].decode() if start >= 0 else ""
                self.errors.append(f"HTTP {status} {reason}".strip())
                await asyncio.sleep(0.5)
                continue
            self.answers.append((at, body))
            # The cursor is the answer's last field: find it without decoding the events.
            self.cursor = body[body.rindex(b'"cursor":"') + 10:-2].decode()
            n = body.count(MARK)
            self.count += n
            tally.events += n

    def close(self):
        """Stop polling."""
        if self.task is not None:
            self.task.cancel()
        self.http.close()


class NchanPoller(Poller):
    """nchan's long-poll: one message per answer, the next request carries the answer's
    ``Last-Modified`` and ``Etag`` back as ``If-Modified-Since`` and ``If-None-Match``.

    Each answer is kept in our shape (``{"events": [message]}``) for the same analysis.
    """

    async def run(self, tally):
        """Poll until cancelled."""
        since = None
        while True:
            headers = [f"If-Modified-Since: {since[0]}", f"If-None-Match: {since[1]}"] \
                if since else []
            try:
                status, body = await self.http.call("GET", self.path, headers=headers)
            except (OSError, asyncio.IncompleteReadError) as exc:
                self.errors.append(repr(exc))
                await asyncio.sleep(0.5)
                continue
            at = time.time()
            if status in (304, 408):  # nothing within nchan's subscriber timeout
                continue
            if status != 200:
                self.errors.append(f"HTTP {status}")
                await asyncio.sleep(0.5)
                continue
            self.answers.append((at, b'{"events":[' + body + b"]}"))
            since = (self.http.headers.get("last-modified"), self.http.headers.get("etag"))
            n = body.count(MARK)
            self.count += n
            tally.events += n

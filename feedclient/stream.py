"""Follow one channel over SSE, WebSocket or long-poll, resuming across reconnects."""
import json
import random
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import requests
import urllib3
import websocket

from feedclient.errors import ApiError
from feedclient.sse import SSEParser

TRANSPORTS = ("sse", "ws", "poll")
# Never handed to the caller: keep-alives, and token_expired, which the subscription handles.
HIDDEN = {"ping", "pong", "token_expired"}
# A connection that lasted this long was healthy: the next failure starts the backoff anew
# (resetting on every open would hammer a server that accepts and drops at once).
HEALTHY_SECONDS = 10.0
WS_CLOSE_TOKEN = 4401  # the server's close code for an expired or revoked token
DROPPED = (requests.RequestException, urllib3.exceptions.HTTPError, websocket.WebSocketException,
           OSError, json.JSONDecodeError)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt n waits U(0, min(cap, base * 2**n))."""

    base: float = 0.5
    cap: float = 15.0

    def delay(self, attempt, rng=random.random):
        """Return the seconds to wait before reconnect *attempt* (0, 1, 2…)."""
        return rng() * min(self.cap, self.base * 2 ** min(attempt, 32))


class TokenExpired(Exception):
    """The server ended the stream because its token expired or was revoked."""


class Subscription:
    """One live channel; iterate it for events, dicts exactly as the contract shows them.

    Besides the channel's events it yields the control messages a caller may act on:
    ``connection_established`` after each (re)connect — long-poll has none, so there the
    client yields its own, with ``"transport": "poll"`` — ``resync_required`` (refetch over
    REST, then keep iterating) and ``error``. Pings and pongs are swallowed. On
    ``token_expired`` it refreshes the client's token and reconnects. After any drop it waits
    (:class:`Backoff`) and resumes from the last event id, so nothing is lost or repeated.

    Stop with ``break`` or a ``with`` block, or call :meth:`close` from another thread: that
    wakes an SSE or WebSocket read at once, a long-poll when its request returns.

    :param use_ticket: open SSE and WebSocket streams with a single-use ``?ticket=`` (True)
        or the ``Authorization`` header (False). Long-poll always sends the header: a ticket
        per request would double the requests.
    :param ping_seconds: the server's ping interval; three times it (at least 5 s) without a
        byte means a dead connection, and the client reconnects.
    :param poll_timeout: how long one long-poll request may wait (the server caps it at 55).
    """

    def __init__(self, client, path, transport="sse", last_event_id=None, *, use_ticket=True,
                 ping_seconds=15.0, poll_timeout=25.0, backoff=Backoff(), connect_timeout=10.0):
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        self.client, self.path, self.transport = client, path, transport
        self.last_event_id = last_event_id
        self.use_ticket = use_ticket
        self.silence_seconds = max(3 * ping_seconds, 5.0)
        self.poll_timeout = poll_timeout
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.reconnects = 0  # connections opened after the first
        self.refreshes = 0
        self._stop = threading.Event()
        self._token = None  # the access token the current connection was opened with
        self._close = self._abort = None
        self._http = requests.Session()
        self._events = self._run()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._events)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        self._events.close()

    def close(self):
        """Stop: no reconnect; a blocked read is interrupted; iteration ends."""
        self._stop.set()
        abort = self._abort
        if abort is not None:
            try:
                abort()
            except (OSError, AttributeError, websocket.WebSocketException):
                pass  # already closed

    # -- the reconnect loop ---------------------------------------------------------------------

    def _run(self):
        attempt, first = 0, True
        try:
            while not self._stop.is_set():
                self.reconnects += not first
                first = False
                opened_at, expired, retry_after = None, False, None
                try:
                    for message in self._connection():
                        opened_at = opened_at or time.monotonic()
                        if message.get("id"):
                            self.last_event_id = message["id"]
                        if message.get("type") == "token_expired":
                            expired = True
                            break
                        if message.get("type") not in HIDDEN:
                            yield message
                        if self._stop.is_set():
                            return
                except TokenExpired:
                    expired = True
                except ApiError as error:
                    if error.code == "token_expired":
                        expired = True
                    elif error.status == 429 or error.status >= 500:
                        retry_after = error.retry_after
                    else:
                        raise  # 401 for good, 403, 404: reconnecting cannot help
                except DROPPED:
                    pass  # dropped, unreachable, or cut mid-message: reconnect and resume
                finally:
                    self._release()
                if self._stop.is_set():
                    return
                if expired:
                    self.client.refresh(stale_token=self._token)  # raises when signed out
                    self.refreshes += 1
                if opened_at is not None and time.monotonic() - opened_at >= HEALTHY_SECONDS:
                    attempt = 0
                delay = max(self.backoff.delay(attempt), retry_after or 0)
                attempt += 1
                if self._stop.wait(delay):
                    return
        finally:
            self._release()
            self._http.close()

    def _hold(self, close, abort):
        self._close, self._abort = close, abort
        if self._stop.is_set():  # closed while connecting
            abort()

    def _release(self):
        close, self._close, self._abort = self._close, None, None
        if close is not None:
            try:
                close()
            except (OSError, websocket.WebSocketException):
                pass

    def _connection(self):
        return {"sse": self._sse, "ws": self._ws, "poll": self._poll}[self.transport]()

    def _credentials(self, allow_ticket=True):
        """Return (query parameters, headers) that authenticate one request."""
        if self.use_ticket and allow_ticket:
            ticket = self.client.stream_ticket()  # refreshes the token first if it expired
            self._token = self.client.access_token
            return {"ticket": ticket}, {}
        self._token = self.client.access_token
        return {}, {"Authorization": f"Bearer {self._token}"}

    # -- transports -----------------------------------------------------------------------------

    def _sse(self):
        params, headers = self._credentials()
        headers["Accept"] = "text/event-stream"
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        response = self._http.get(f"{self.client.base_url}/stream/{self.path}", params=params,
                                  headers=headers, stream=True, verify=self.client.verify,
                                  timeout=(self.connect_timeout, self.silence_seconds))
        self._hold(response.close, response.raw.shutdown)
        if response.status_code != 200:
            raise ApiError.from_response(response)
        parser = SSEParser()
        # read1 hands over what has arrived; read(n) would wait for n bytes.
        for chunk in iter(lambda: response.raw.read1(65536), b""):
            for event in parser.feed(chunk):
                yield event.json()

    def _ws(self):
        params, headers = self._credentials()
        if self.last_event_id:
            params["last_event_id"] = self.last_event_id
        base = self.client.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        url = f"{base}/ws/{self.path}" + (f"?{urlencode(params)}" if params else "")
        try:
            # No Origin: the server's Origin check is for browsers; a bot has no page origin.
            ws = websocket.create_connection(
                url, timeout=self.silence_seconds, suppress_origin=True, sslopt=self._sslopt(),
                header=[f"{name}: {value}" for name, value in headers.items()])
        except websocket.WebSocketBadStatusException as exc:
            raise ApiError.from_answer(exc.status_code, exc.resp_body, exc.resp_headers) from None
        self._hold(ws.close, ws.abort)
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                if int.from_bytes(data[:2], "big") == WS_CLOSE_TOKEN:
                    raise TokenExpired()
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                yield json.loads(data)

    def _poll(self):
        url = f"{self.client.base_url}/poll/{self.path}"
        cursor = self.last_event_id
        # The first request of a connection answers at once: it checks the credentials and,
        # without a cursor, fixes "now" as the starting point.
        wait = 0
        while not self._stop.is_set():
            params, headers = self._credentials(allow_ticket=False)
            params["timeout"] = wait
            if cursor:
                params["cursor"] = cursor
            response = self._http.get(url, params=params, headers=headers,
                                      verify=self.client.verify,
                                      timeout=(self.connect_timeout, wait + 10))
            if response.status_code != 200:
                raise ApiError.from_response(response)
            body = response.json()
            if wait == 0:
                yield {"type": "connection_established", "transport": "poll",
                       "message": "long-poll cursor obtained"}
            yield from body["events"]
            cursor = self.last_event_id = body["cursor"]
            wait = self.poll_timeout

    def _sslopt(self):
        verify = self.client.verify
        if verify is False:
            return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        if isinstance(verify, (str, Path)):
            key = "ca_cert_path" if Path(verify).is_dir() else "ca_certs"
            return {key: str(verify)}
        return {}

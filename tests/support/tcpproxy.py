"""A small user-space TCP proxy on loopback, for faults that signals and admin commands cannot make.

Put it between a server and what it talks to (Redis, PostgreSQL) and it can:

- ``stall()``: stop moving bytes in both directions without closing anything, as a partitioned
  or black-holed network does (and as a hung peer looks from outside). New connections are
  accepted, then stall too. Data waits in the socket buffers; ``resume()`` moves it again, losslessly.
- ``cut()``: reset every open connection at once (RST, not FIN), as a middlebox that dropped its
  state does. A blackhole that TCP gives up on is ``stall()``, then ``cut()`` and ``resume()``.
- count the bytes each way, and hand the client's bytes to a per-connection parser, e.g.
  :class:`PostgresMessages`, which counts the queries a PostgreSQL client sends.

It runs in gevent greenlets of the test process (which tests/conftest.py monkey-patches).
"""
import socket
import struct

import gevent
from gevent.event import Event
from gevent.server import StreamServer

from tests.support.servers import free_port


class TCPProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``.

    :param parser: called with no argument for each new connection; returns an object whose
        ``feed(bytes)`` sees everything the client sends (optional).
    """

    def __init__(self, upstream_port, upstream_host="127.0.0.1", port=None, parser=None):
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.parser = parser
        self.bytes_up = 0  # client -> upstream
        self.bytes_down = 0  # upstream -> client
        self.connections = set()
        self.accepted = 0
        self._flowing = Event()
        self._flowing.set()
        self._server = StreamServer(("127.0.0.1", self.port), self._handle, backlog=1024)

    @property
    def url_host(self):
        """Return ``127.0.0.1:<port>`` for URLs."""
        return f"127.0.0.1:{self.port}"

    def start(self):
        """Listen; return self."""
        self._server.start()
        return self

    def stop(self):
        """Stop listening and reset every connection."""
        self._server.stop(timeout=0)
        self.cut()

    # -- faults -------------------------------------------------------------------------------

    @property
    def stalled(self):
        """Return whether bytes are being held."""
        return not self._flowing.is_set()

    def stall(self):
        """Hold every byte in both directions, on open and new connections alike."""
        self._flowing.clear()

    def resume(self):
        """Move bytes again; nothing held was lost."""
        self._flowing.set()

    def cut(self):
        """Reset every open connection (RST)."""
        for pair in list(self.connections):
            for sock in pair:
                _reset(sock)
        self.connections.clear()

    # -- forwarding -----------------------------------------------------------------------------

    def _handle(self, client, _address):
        self.accepted += 1
        self._flowing.wait()
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = (client, upstream)
        self.connections.add(pair)
        parser = self.parser() if self.parser else None
        down = gevent.spawn(self._pump, upstream, client, "down", None)
        try:
            self._pump(client, upstream, "up", parser)
        finally:
            down.kill(block=False)
            self.connections.discard(pair)
            for sock in pair:
                try:
                    sock.close()
                except OSError:
                    pass

    def _pump(self, source, target, direction, parser):
        while True:
            self._flowing.wait()
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    target.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            # A stall that began while this greenlet waited in recv holds these bytes too.
            self._flowing.wait()
            if direction == "up":
                self.bytes_up += len(data)
                if parser is not None:
                    parser.feed(data)
            else:
                self.bytes_down += len(data)
            try:
                target.sendall(data)
            except OSError:
                return


def _reset(sock):
    """Close *sock* with an RST: SO_LINGER on, zero seconds."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class PostgresMessages:
    """Count the messages a PostgreSQL client sends (frontend protocol 3.0), by type.

    The first messages of a connection have no type byte (SSLRequest, GSSENCRequest, the
    startup message); every later one is ``type(1) length(4) body``. A query is a ``Q``
    (simple query) or a ``P`` (parse) followed by ``E`` (execute) in the extended protocol:
    :attr:`queries` counts ``Q`` and ``E``. Use ``sslmode=disable``, or the bytes are opaque.

    One :class:`PostgresMessages` per connection; *totals* is shared by all of them.
    """

    STARTUP_CODES = {80877103, 80877104}  # SSLRequest, GSSENCRequest: another untyped follows

    def __init__(self, totals):
        self.totals = totals
        self._buffer = b""
        self._started = False

    def feed(self, data):
        """Consume client bytes and count complete messages."""
        self._buffer += data
        while True:
            if not self._started:
                if len(self._buffer) < 8:
                    return
                length, code = struct.unpack("!ii", self._buffer[:8])
                if len(self._buffer) < length:
                    return
                self._buffer = self._buffer[length:]
                self._started = code not in self.STARTUP_CODES
                continue
            if len(self._buffer) < 5:
                return
            kind = self._buffer[:1].decode("latin-1")
            (length,) = struct.unpack("!i", self._buffer[1:5])
            if len(self._buffer) < 1 + length:
                return
            self._buffer = self._buffer[1 + length:]
            self.totals[kind] = self.totals.get(kind, 0) + 1

    @staticmethod
    def queries(totals):
        """Return the number of statements executed in *totals* (simple and extended)."""
        return totals.get("Q", 0) + totals.get("E", 0)

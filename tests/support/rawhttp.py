"""HTTP/1.1 and WebSocket frames on a raw gevent socket: lean enough for thousands of clients,
and free to send what a library would refuse (fuzzing, half requests)."""
import os
import socket


class Closed(Exception):
    """The server closed the connection (or it was reset)."""


class Conn:
    """A socket with a read buffer: read a response head, a body, chunked data."""

    def __init__(self, host, port, source=None, rcvbuf=None, timeout=30):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        self.sock.sendall(data)

    def fill(self):
        try:
            data = self.sock.recv(262144)
        except OSError as exc:
            raise Closed(str(exc)) from None
        if not data:
            raise Closed("closed by the server")
        self.buffer += data

    def read_until(self, marker):
        while marker not in self.buffer:
            self.fill()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def read_exactly(self, size):
        while len(self.buffer) < size:
            self.fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_to_end(self):
        """Return what is left of the stream once the server closes the connection."""
        try:
            while True:
                self.fill()
        except Closed:
            pass
        data, self.buffer = self.buffer, b""
        return data

    def read_head(self):
        """Return ``(status, headers)`` of a response (header names lower-cased)."""
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split()[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def read_body(self, headers):
        """Return a whole response body (Content-Length or chunked)."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return b"".join(iter(self.read_chunk, b""))
        return self.read_exactly(int(headers.get("content-length", "0")))

    def read_chunk(self):
        """Return the next chunk of a chunked body; b"" at its end."""
        size = int(self.read_until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            self.read_until(b"\r\n")
            return b""
        data = self.read_exactly(size)
        self.read_exactly(2)
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Close with an RST (a client that vanished)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()


def request_bytes(method, path, host, headers=None, body=None, version="HTTP/1.1"):
    """Return the bytes of an HTTP/1.1 request (or of another *version*)."""
    lines = [f"{method} {path} {version}", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def read_frame(conn):
    """Return ``(opcode, payload)`` of the next whole message from the server."""
    opcode, message = None, b""
    while True:
        head = conn.read_exactly(2)
        fin, op = head[0] & 0x80, head[0] & 0x0F
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(conn.read_exactly(2), "big")
        elif size == 127:
            size = int.from_bytes(conn.read_exactly(8), "big")
        mask = conn.read_exactly(4) if head[1] & 0x80 else None
        payload = conn.read_exactly(size)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if op >= 0x8:
            return op, payload  # control frames are never fragmented
        opcode = op if op else opcode
        message += payload
        if fin:
            return opcode, message


def client_frame(opcode, payload, fin=True, mask=None):
    """Return a masked client frame."""
    mask = mask if mask is not None else os.urandom(4)
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

"""Measure what permessage-deflate costs per WebSocket connection.

    .venv/bin/python bench/ws_deflate_memory.py [--connections 500]

Starts one gunicorn worker (in-process broker), opens N WebSockets on one channel with and
without deflate, sends every socket the same events so each has live compression state, and
prints the worker's RSS growth per connection for both.
"""
import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from wsproto import ConnectionType, WSConnection  # noqa: E402
from wsproto.events import AcceptConnection, RejectConnection, Request, TextMessage  # noqa: E402
from wsproto.extensions import PerMessageDeflate  # noqa: E402

from tests.support.servers import Server, migrate  # noqa: E402


def rss_kib(pid):
    """Return the resident set size of *pid* in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_socket(port, token, deflate):
    """Open one WebSocket on the user's feed; return (socket, wsproto connection)."""
    sock = socket.create_connection(("127.0.0.1", port))
    conn = WSConnection(ConnectionType.CLIENT)
    sock.sendall(conn.send(Request(host=f"127.0.0.1:{port}", target=f"/ws/feed?token={token}",
                                   extensions=[PerMessageDeflate()] if deflate else [])))
    while True:
        conn.receive_data(sock.recv(65536))
        for event in conn.events():
            if isinstance(event, AcceptConnection):
                return sock, conn
            if isinstance(event, RejectConnection):
                raise RuntimeError(f"handshake refused with {event.status_code}")


def drain(sockets, want):
    """Read until every socket got *want* text messages."""
    for sock, conn in sockets:
        # The handshake's read may already hold the first message.
        got = sum(isinstance(e, TextMessage) for e in conn.events())
        while got < want:
            conn.receive_data(sock.recv(1 << 20))
            got += sum(isinstance(e, TextMessage) for e in conn.events())


def measure(connections, deflate):
    """Return KiB of worker RSS per connection, with or without deflate."""
    directory = tempfile.mkdtemp()
    url = f"sqlite:///{directory}/bench.db"
    migrate(url)
    server = Server({"DATABASE_URL": url, "STREAMS_PER_USER": str(connections + 100),
                     "WS_COMPRESSION": "true" if deflate else "false",
                     "STREAM_PING_SECONDS": "300"}, log_dir=directory).start()
    try:
        http = requests.Session()
        token = http.post(f"{server.url}/api/auth/register",
                          json={"username": "bench", "password": "password123"}).json()["access_token"]
        worker = server.worker_pids()[0]
        warm = [open_socket(server.port, token, deflate) for _ in range(20)]  # warm up imports
        drain(warm, 1)
        time.sleep(0.5)
        before = rss_kib(worker)
        sockets = [open_socket(server.port, token, deflate) for _ in range(connections)]
        drain(sockets, 1)  # connection_established
        for i in range(3):  # events with live compression contexts on every socket
            http.post(f"{server.url}/api/posts", json={"content": f"event {i} " + "x" * 500},
                      headers={"Authorization": f"Bearer {token}"})
        drain(sockets, 3)
        time.sleep(0.5)
        after = rss_kib(worker)
        for sock, _ in sockets + warm:
            sock.close()
        return (after - before) / connections
    finally:
        server.stop()


def main():
    """Measure both ways and print the difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    args = parser.parse_args()
    plain = measure(args.connections, deflate=False)
    compressed = measure(args.connections, deflate=True)
    print(f"{args.connections} WebSockets, one worker: {plain:.1f} KiB RSS per connection "
          f"without permessage-deflate, {compressed:.1f} KiB with it "
          f"(+{compressed - plain:.1f} KiB for its compression state)")


if __name__ == "__main__":
    os.environ.setdefault("JWT_SECRET_KEY", "bench-" + "k" * 40)
    main()

"""The direct write path: live events written to a waiting stream's socket from the event loop.

A real socket pair under gevent, the in-process broker and a real stream session; only the
client end of the socket is read by the test.
"""
import socket
import ssl
import time
from types import SimpleNamespace

import gevent
import gevent.socket
import pytest

from app.auth.signout import StreamsBySession
from app.broker.memory import MemoryBroker
from app.events.schema import Event
from app.stream_quota import MemoryQuota
from app.transports.delivery import SocketWriter, raw_socket
from app.transports.session import StreamSession
from app.transports.sse import sse_frame
from feedclient import parse_sse

SETTINGS = {"STREAM_PING_SECONDS": 30, "STREAMS_PER_USER": 5, "STREAM_QUEUE_MAX_EVENTS": 1000,
            "STREAM_QUEUE_MAX_BYTES": 1 << 22, "STREAM_MAX_LAG_SECONDS": 30}


@pytest.fixture
def stream():
    """An open session attached to one end of a socket pair; yields (session, client end)."""
    broker = MemoryBroker(history_max_events=100)
    server, client = socket.socketpair()
    who = SimpleNamespace(user_id="u1", sid="s1", expires_at=time.time() + 3600)
    session = StreamSession(broker, "feed:u1", who, "sse", SETTINGS, MemoryQuota(),
                            StreamsBySession(broker))
    session.open()
    session.attach(SocketWriter(server, sse_frame))
    yield session, client
    session.close()
    broker.close()
    server.close()
    client.close()


def publish(session, n=1):
    """Publish *n* events on the session's channel; return their ids."""
    return [session.broker.publish([session.channel], Event("new_post", {"n": i}))[0]
            for i in range(n)]


def read_ids_from(data):
    """Return the ids of the SSE events in *data*."""
    return [event.id for event in parse_sse(data)]


def read_ids(client, count, timeout=5):
    """Return the ids of the first *count* SSE blocks the client end receives."""
    client.settimeout(timeout)
    data = b""
    while data.count(b"\n\n") < count:
        data += client.recv(65536)
    return read_ids_from(data)


def waiting(session):
    """Start the stream's greenlet waiting for live messages; return it."""
    greenlet = gevent.spawn(session.receive, 30)
    gevent.sleep(0)  # let it reach its wait
    assert session.inbox._waiter is not None
    return greenlet


def test_events_in_sequence_are_written_without_waking_the_stream(stream):
    session, client = stream
    greenlet = waiting(session)
    sent = publish(session, 3)
    assert read_ids(client, 3) == sent
    assert not greenlet.ready()  # written from the event loop; the stream still waits
    assert session.position.event_id == sent[-1]
    greenlet.kill()


def test_events_of_one_dispatch_round_go_out_in_one_write(stream):
    session, client = stream
    greenlet = waiting(session)
    sent = publish(session, 5)  # no yield in between: one round, one callback
    gevent.sleep(0)
    gevent.sleep(0)
    client.settimeout(5)
    first = client.recv(65536)
    assert first.count(b"\n\n") == 5 and read_ids_from(first) == sent
    greenlet.kill()


def test_a_gap_wakes_the_stream_which_fills_it_from_history(stream):
    session, client = stream
    broker = session.broker
    broker.hub.remove(session.inbox)  # as if pub/sub lost the next two events
    missed = publish(session, 2)
    broker.hub.add(session.inbox)
    greenlet = waiting(session)
    later = publish(session, 1)
    got = greenlet.get(timeout=5)  # woken, not written directly
    assert [m.event_id for m in got] == missed + later
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(1)  # nothing reached the socket behind the stream's back


def test_a_full_socket_leaves_the_rest_pending_for_the_stream_in_order(stream):
    session, client = stream
    writer = session.writer
    writer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    greenlet = waiting(session)
    big = session.broker.publish([session.channel], Event("new_post", {"x": "a" * 500_000}))
    woken = greenlet.get(timeout=5)  # the kernel took part: the stream is woken
    assert woken == [] and writer.pending
    reader = gevent.spawn(read_ids, client, 2, 10)
    later = publish(session, 1)
    writer.send(b"".join(m.framed(sse_frame) for m in session.receive(1)))
    assert reader.get(timeout=10) == big + later
    assert not writer.pending


def test_a_tls_socket_is_never_written_from_the_event_loop():
    # Under gunicorn --certfile the connection is TLS: bytes written to the socket beneath
    # its TLS layer would break the stream, so every write waits for the stream's greenlet.
    left, right = gevent.socket.socketpair()
    tls = ssl.create_default_context().wrap_socket(left, server_hostname="feed.example",
                                                   do_handshake_on_connect=False)
    with tls, right:
        assert raw_socket(tls) is None
        writer = SocketWriter(tls, sse_frame)
        assert writer.send_nowait(b"event") is False
        assert writer.pending == b"event"

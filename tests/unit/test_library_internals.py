"""Private attributes of libraries we read for speed: each test fails loudly when one moves.

A silent fallback would keep the app working, slower or with more memory (wsproto's deflate
flag moved once, and every WebSocket frame was built per connection unnoticed).
"""
import _socket
import inspect
from types import SimpleNamespace

import gevent
import gevent.socket
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.cluster import NodesManager, RedisCluster
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.extensions import PerMessageDeflate

from app.metrics import DeliveryMeter
from app.transports.delivery import raw_socket
from app.transports.ws_frames import deflate_negotiated


def test_gevent_keeps_the_os_socket_non_blocking_in_sock():
    left, right = gevent.socket.socketpair()
    with left, right:
        raw = raw_socket(left)
        # The OS-level socket, not a gevent wrapper that would wait on the event loop.
        assert isinstance(raw, _socket.socket) and not isinstance(raw, gevent.socket.socket)
        assert raw.gettimeout() == 0.0  # a send on it never waits


def _handshake(offer_deflate):
    """Return a server-side wsproto connection after a handshake, with or without deflate."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    extensions = [PerMessageDeflate()] if offer_deflate else []
    server.receive_data(client.send(Request(host="h", target="/", extensions=extensions)))
    request = next(server.events())
    accept = [PerMessageDeflate()] if request.extensions else []
    server.send(AcceptConnection(extensions=accept))
    return SimpleNamespace(ws=server)  # as simple-websocket's Server holds it


def test_wsproto_tells_whether_deflate_was_agreed():
    assert deflate_negotiated(_handshake(offer_deflate=True)) is True
    # False only comes from reading wsproto's private state: if it moved, this says True.
    assert deflate_negotiated(_handshake(offer_deflate=False)) is False


def test_prometheus_histogram_bounds_buckets_and_sum_take_counts_in_bulk():
    registry = CollectorRegistry()
    histogram = Histogram("latency_seconds", "x", buckets=(0.1, 1.0), registry=registry)
    counter = Counter("events", "x", ["transport"], registry=registry)
    meter = DeliveryMeter(histogram, counter)
    meter.add("sse", [SimpleNamespace(ts=1)], copies=3)  # long ago: the +Inf bucket
    meter.flush()
    assert registry.get_sample_value("latency_seconds_count") == 3
    assert registry.get_sample_value("latency_seconds_bucket", {"le": "+Inf"}) == 3
    assert registry.get_sample_value("latency_seconds_sum") > 0
    assert registry.get_sample_value("events_total", {"transport": "sse"}) == 3


def test_redis_cluster_reloads_its_slot_map_through_nodes_manager():
    assert callable(NodesManager.initialize)
    assert "self.nodes_manager" in inspect.getsource(RedisCluster.__init__)


def test_deliveries_counted_in_one_event_loop_pass_are_added_once_per_message():
    registry = CollectorRegistry()
    histogram = Histogram("latency_seconds", "x", buckets=(0.1, 1.0), registry=registry)
    counter = Counter("events", "x", ["transport"], registry=registry)
    meter = DeliveryMeter(histogram, counter)
    class Sent:  # a message: hashable by identity, as Message is
        def __init__(self, ts):
            self.ts = ts

    one, two = Sent(1), Sent(2)
    for _ in range(3):
        meter.count("sse", [one])  # one message to three streams
    meter.count("sse", [one, two])  # two messages to one stream
    meter.count("ws", [two])
    gevent.sleep(0)  # the event loop's callbacks run: the counts are folded
    meter.flush()
    assert registry.get_sample_value("latency_seconds_count") == 6
    assert registry.get_sample_value("events_total", {"transport": "sse"}) == 5
    assert registry.get_sample_value("events_total", {"transport": "ws"}) == 1

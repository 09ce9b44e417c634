"""Redis Cluster: sharded pub/sub with one connection per shard, following failovers.

Each channel's pub/sub name shares its hash tag with the channel's keys, so ``SPUBLISH`` in the
publish script reaches only the shard that owns the channel, and a worker listens with one
``SSUBSCRIBE`` connection per shard that owns at least one of its channels. When a shard's
connection is lost the worker reloads the cluster's slot map and moves each channel to its
current owner; the broker then checks those channels for missed events, exactly as after a
reconnect to a single Redis.
"""
import logging

import gevent
from gevent.lock import Semaphore

from app.broker.listener import Listener, PubSubConnection, PubSubListener

log = logging.getLogger(__name__)


class ShardedListener(PubSubListener):
    """The :class:`~app.broker.listener.PubSubListener` over every shard of a Redis Cluster.

    :param cluster: a ``redis.cluster.RedisCluster`` (its slot map routes each channel).
    :param on_moved: called with ``(names, old address, new address)`` after channels moved
        to another shard (a failover or a resharding).
    """

    def __init__(self, cluster, on_message, on_connected, password=None, username=None,
                 health_seconds=5.0, name=None, on_moved=None):
        self.cluster = cluster
        self.on_message = on_message
        self.on_connected = on_connected
        self.on_moved = on_moved
        self.credentials = (password, username)
        self.health_seconds = health_seconds
        self.name = name
        self.listeners = {}  # (host, port) -> Listener
        self.owner = {}  # pub/sub name -> (host, port)
        self._rebalancing = None
        self._lock = Semaphore()

    def _address(self, name):
        node = self.cluster.get_node_from_key(name)
        return node.host, node.port

    def _listener(self, address):
        listener = self.listeners.get(address)
        if listener is None:
            password, username = self.credentials
            connection = PubSubConnection(*address, password, username, name=self.name)
            listener = self.listeners[address] = Listener(
                connection, self.on_message, self.on_connected,
                wanted=lambda: [n for n, a in self.owner.items() if a == address],
                health_seconds=self.health_seconds, on_lost=self._lost, sharded=True)
            listener.start()
        return listener

    def healthy(self):
        """Return whether every shard that owns a wanted channel is connected."""
        return all(self.listeners.get(a) is not None and self.listeners[a].connected.is_set()
                   for a in set(self.owner.values()))

    def wait_connected(self, timeout):
        """Return whether every shard that owns a wanted channel connects within *timeout* s.

        Shard connections open with their first channel: with none yet, there is nothing to
        wait for.
        """
        deadline = gevent.get_hub().loop.now() + timeout
        for address in set(self.owner.values()):
            listener = self.listeners.get(address)
            if listener is None or not listener.wait_connected(
                    max(0.0, deadline - gevent.get_hub().loop.now())):
                return False
        return True

    def subscribe(self, *names, wait=5.0):
        """Subscribe to each of *names* on the shard that owns it; wait for the confirmations."""
        for name in names:
            address = self._address(name)
            self.owner[name] = address
            listener = self._listener(address)
            if not listener.wait_connected(wait):
                raise ConnectionError(
                    f"no pub/sub connection to the shard at {address[0]}:{address[1]}")
            listener.subscribe(name)

    def wait_subscribed(self, name):
        """Wait for a pending subscription of *name*."""
        address = self.owner.get(name)
        if address is not None and address in self.listeners:
            self.listeners[address].wait_subscribed(name)

    def unsubscribe(self, name):
        """Unsubscribe from *name* (its shard connection stays open for the next channel)."""
        address = self.owner.pop(name, None)
        listener = self.listeners.get(address)
        if listener is not None:
            listener.unsubscribe(name)

    def stop(self):
        """Close every shard connection."""
        for listener in self.listeners.values():
            listener.stop()
        self.listeners.clear()

    def _lost(self, listener):
        if self._rebalancing is None or self._rebalancing.dead:
            self._rebalancing = gevent.spawn(self._rebalance, listener.connection.address)

    def _rebalance(self, lost, attempts=60):
        """Reload the slot map until none of our channels is owned by the lost shard."""
        for attempt in range(attempts):
            gevent.sleep(min(0.25 * (attempt + 1), 2.0))
            try:
                self.cluster.nodes_manager.initialize()
            except Exception as exc:  # noqa: BLE001 - the cluster is still electing a primary
                log.info("cluster slot map not available yet (%s)", exc)
                continue
            moved = {}
            for name, address in list(self.owner.items()):
                current = self._address(name)
                if current != address:
                    moved.setdefault((address, current), []).append(name)
            with self._lock:
                self._move(moved)
            if lost not in set(self.owner.values()):
                return
            # Part of the slot map still names the lost node: the failover is not over.
        log.error("channels of %s:%s found no other shard; they stay on it", *lost)

    def _move(self, moved):
        for (old, new), names in moved.items():
            log.warning("%d channels moved from %s:%s to %s:%s; resubscribing", len(names),
                        *old, *new)
            for name in names:
                self.owner[name] = new
            listener = self._listener(new)
            if listener.wait_connected(5.0):
                try:
                    listener.subscribe(*names)
                except ConnectionError:
                    pass  # its reconnect will resubscribe them (they are in its wanted list)
            if self.on_moved is not None:
                self.on_moved(names, old, new)
        for address in [a for a in self.listeners if a not in set(self.owner.values())]:
            self.listeners.pop(address).stop()

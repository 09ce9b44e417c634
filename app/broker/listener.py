"""One Redis pub/sub connection per worker process, shared by all of its streams.

A single greenlet owns the reading side: it parses replies with hiredis and hands each live
message to the hub. Subscribing and unsubscribing write on the same socket from the caller's
greenlet, under a lock. redis-py's PubSub reconnects silently, and a silent reconnect is a
silent gap; this connection never reconnects behind the broker's back: the broker learns of
every reconnect and checks every channel for what it may have missed.
"""
import logging
import random
import socket
from abc import ABC, abstractmethod

import gevent
import hiredis
from gevent.event import Event
from gevent.lock import Semaphore

log = logging.getLogger(__name__)


class StaleConnection(ConnectionError):
    """Redis did not answer a health check in time (a hung or paused server)."""


def encode_command(*args):
    """Return *args* as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class PubSubConnection:
    """A raw RESP connection in subscribed mode, with health checks."""

    def __init__(self, host, port, password=None, username=None, connect_timeout=2.0,
                 name=None):
        self.address = (host, port)
        self.name = name
        self.password = password
        self.username = username
        self.connect_timeout = connect_timeout
        self.sock = None
        self._write_lock = Semaphore()
        self._reader = hiredis.Reader()

    def connect(self):
        """Open the socket and authenticate."""
        self._reader = hiredis.Reader()
        self.sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.password:
            auth = (self.username, self.password) if self.username else (self.password,)
            self.send("AUTH", *auth)
            reply = self._read_one()
            if isinstance(reply, hiredis.ReplyError):
                raise ConnectionError(f"Redis refused AUTH: {reply}")
        if self.name:
            # Named, so operators (and tests) can find each worker's one pub/sub connection.
            self.send("CLIENT", "SETNAME", self.name)
            self._read_one()

    def _read_one(self):
        while True:
            reply = self._reader.gets()
            if reply is not False:
                return reply
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self._reader.feed(data)

    def send(self, *args):
        """Write one command; safe from any greenlet."""
        sock = self.sock
        if sock is None:
            raise ConnectionError("not connected to Redis")
        with self._write_lock:
            sock.sendall(encode_command(*args))

    def send_many(self, commands):
        """Write several commands in one write; safe from any greenlet."""
        sock = self.sock
        if sock is None:
            raise ConnectionError("not connected to Redis")
        with self._write_lock:
            sock.sendall(b"".join(encode_command(*command) for command in commands))

    def replies(self, health_seconds):
        """Yield replies as they arrive; PING when idle, and raise when a PING goes unanswered."""
        self.sock.settimeout(health_seconds)
        awaiting_pong = False
        while True:
            try:
                data = self.sock.recv(262144)
            except socket.timeout:
                if awaiting_pong:
                    raise StaleConnection(f"no answer from Redis in {2 * health_seconds:g} s")
                self.send("PING")
                awaiting_pong = True
                continue
            if not data:
                raise ConnectionError("Redis closed the connection")
            awaiting_pong = False
            self._reader.feed(data)
            while (reply := self._reader.gets()) is not False:
                yield reply

    def close(self):
        """Close the socket (wakes a greenlet blocked on it)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class PubSubListener(ABC):
    """What the Redis broker needs of its pub/sub side, on one Redis or on a cluster.

    Both implementations call ``on_message(name, data)`` for each live message and
    ``on_connected(names)`` after each (re)connect, once *names* are subscribed again.
    """

    @abstractmethod
    def wait_connected(self, timeout):
        """Connect if not yet started; return whether the connection is up within *timeout* s."""

    @abstractmethod
    def healthy(self):
        """Return whether every connection this process needs is up."""

    @abstractmethod
    def subscribe(self, *names):
        """Subscribe to *names* and wait until Redis confirms each one.

        :raises ConnectionError: when not connected or not confirmed in time.
        """

    @abstractmethod
    def wait_subscribed(self, name):
        """Wait for a subscription of *name* another greenlet asked for, if still pending.

        :raises ConnectionError: when it is not confirmed in time.
        """

    @abstractmethod
    def unsubscribe(self, name):
        """Unsubscribe from *name* (a later reconnect does not resubscribe it)."""

    @abstractmethod
    def stop(self):
        """Stop listening and close every connection."""


class Listener(PubSubListener):
    """Keeps the process subscribed to the channels its streams need, across reconnects.

    :param connection: a :class:`PubSubConnection`.
    :param on_message: called with ``(pubsub channel bytes, data bytes)`` for each message.
    :param on_connected: called with the subscribed channels after every (re)connect.
    :param wanted: returns the pub/sub channels to subscribe to after a (re)connect.
    :param on_lost: called (with this listener) whenever the connection is lost.
    :param sharded: use SSUBSCRIBE (Redis Cluster's sharded pub/sub) instead of SUBSCRIBE.
    """

    def __init__(self, connection, on_message, on_connected, wanted, health_seconds=5.0,
                 confirm_seconds=5.0, max_backoff=3.0, on_lost=None, sharded=False):
        self.connection = connection
        self.on_message = on_message
        self.on_connected = on_connected
        self.on_lost = on_lost
        self.wanted = wanted
        self.sharded = sharded
        self.commands = ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        self.health_seconds = health_seconds
        self.confirm_seconds = confirm_seconds
        self.max_backoff = max_backoff
        self.connected = Event()
        self._pending = {}
        self._greenlet = None
        self._stopping = False
        self._recovered = False

    def healthy(self):
        """Return whether the connection is up."""
        return self.connected.is_set()

    def start(self):
        """Start the listening greenlet (once)."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def wait_connected(self, timeout):
        """Start listening if not yet started; return whether connected within *timeout* s."""
        self.start()
        return self.connected.wait(timeout)

    def stop(self):
        """Stop listening and close the connection."""
        self._stopping = True
        self.connection.close()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def subscribe(self, *channels):
        """Subscribe to *channels* and wait until Redis confirms each one."""
        if not self.connected.is_set():
            raise ConnectionError("the pub/sub connection to Redis is down")
        waits = [self._pending.setdefault(channel, Event()) for channel in channels]
        if self.sharded:
            # SSUBSCRIBE takes channels of one slot only: one command per channel.
            self.connection.send_many([(self.commands[0], channel) for channel in channels])
        else:
            self.connection.send(self.commands[0], *channels)
        for wait in waits:
            if not wait.wait(self.confirm_seconds):
                raise ConnectionError(f"Redis did not confirm a subscription in {self.confirm_seconds:g} s")

    def wait_subscribed(self, channel):
        """Wait for a subscription another greenlet asked for, if it is still pending."""
        pending = self._pending.get(channel)
        if pending is not None and not pending.wait(self.confirm_seconds):
            raise ConnectionError("Redis did not confirm a subscription in time")

    def unsubscribe(self, channel):
        """Unsubscribe from *channel*, when connected."""
        if self.connected.is_set():
            try:
                self.connection.send(self.commands[1], channel)
            except OSError:
                pass

    def _run(self):
        backoff = 0.1
        while not self._stopping:
            recovery, self._recovered = None, False
            try:
                self.connection.connect()
                self.connected.set()
                # Resubscribing waits for confirmations that only the reading loop can see.
                recovery = gevent.spawn(self._recover)
                self._read()
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect and recheck
                if self._stopping:
                    return
                log.warning("Redis pub/sub connection to %s:%s lost (%s); reconnecting",
                            *self.connection.address, exc)
                if self.on_lost is not None:
                    self.on_lost(self)
            finally:
                self.connected.clear()
                self._pending.clear()
                if recovery is not None:
                    recovery.kill(block=False)
            self.connection.close()
            if self._recovered:
                backoff = 0.1
            gevent.sleep(random.uniform(0.5, 1.0) * backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def _recover(self):
        """Subscribe to every wanted channel, then let the broker check what it missed."""
        try:
            channels = list(self.wanted())
            if channels:
                self.subscribe(*channels)
            self.on_connected(channels)
            self._recovered = True
        except Exception as exc:  # noqa: BLE001
            log.warning("resubscribing after a reconnect failed (%s)", exc)
            self.connection.close()

    def _read(self):
        on_message = self.on_message
        for reply in self.connection.replies(self.health_seconds):
            if isinstance(reply, hiredis.ReplyError):
                log.error("Redis pub/sub error: %s", reply)
                continue
            kind = reply[0]
            if kind in (b"message", b"smessage"):
                on_message(reply[1], reply[2])
            elif kind in (b"subscribe", b"ssubscribe"):
                pending = self._pending.pop(reply[1], None)
                if pending is not None:
                    pending.set()

"""The Redis broker: atomic publish-and-append per channel, one pub/sub connection per process."""
import logging
import os
import time

import gevent
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.connection import parse_url

from app.broker import scripts
from app.broker.base import Broker, BrokerUnavailable, Replay
from app.broker.hub import CHECK
from app.broker.listener import Listener, PubSubConnection
from app.events.wire import Position, new_epoch, unpack

log = logging.getLogger(__name__)

_ERRORS = (redis.RedisError, OSError)


class RedisBroker(Broker):
    """Keeps history in Redis Streams and delivers live events over pub/sub.

    Every publish runs one script per channel that bumps the channel's sequence number,
    appends the event to its history and publishes it, so the id a client sees live is the
    id it resumes from. A worker that may have missed live messages (its pub/sub connection
    dropped) reads every subscribed channel's head and lets each stream fill its gap from
    history, or resync.

    :param url: the ``redis://`` URL.
    :param prefix: the namespace of every key and channel (several apps can share a Redis).
    """

    def __init__(self, url, prefix="rt", health_seconds=5.0, slot_ttl_seconds=30, **kwargs):
        super().__init__(**kwargs)
        self.prefix = prefix
        # One quick retry after a dropped connection, none after a timeout (the script may
        # have run: a retry would publish twice), then fail: a request must not hang on a
        # Redis that is away, and redis-py's default retries take seconds.
        retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1,
                      supported_errors=(redis.ConnectionError,))
        self.redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0,
                                          retry=retry)
        self._publish_script = self.redis.register_script(scripts.PUBLISH)
        self._read_script = self.redis.register_script(scripts.READ)
        self._reset_script = self.redis.register_script(scripts.RESET)
        self._acquire_script = self.redis.register_script(scripts.ACQUIRE_SLOT)
        self._control = f"{prefix}:control".encode()
        self._names = {}  # pub/sub channel bytes -> channel
        self._lost = set()  # channels whose publish may not have happened
        self._slots = {}  # stream id -> user id, refreshed while the stream is open
        self.slot_ttl_ms = int(slot_ttl_seconds * 1000)
        self.meta_ttl_ms = (self.history_max_seconds + 7 * 86400) * 1000
        params = parse_url(url)
        connection = PubSubConnection(params.get("host", "127.0.0.1"), params.get("port", 6379),
                                      params.get("password"), params.get("username"),
                                      name=f"{prefix}-pubsub-{os.getpid()}")
        self.listener = Listener(connection, self._on_message, self._on_reconnect, self._wanted,
                                 health_seconds=health_seconds)
        self._heartbeat = None

    # -- names ----------------------------------------------------------------------------

    def _keys(self, channel):
        tag = f"{self.prefix}:{{{channel}}}"
        return [f"{tag}:m", f"{tag}:h"]

    def _pubsub_name(self, channel):
        return f"{self.prefix}:{{{channel}}}".encode()

    # -- publishing and history -------------------------------------------------------------

    def publish(self, channels, event):
        """Publish *event* to *channels* in one pipelined round trip; return their ids."""
        head, tail = event.encode()
        try:
            self._repair_lost()
            pipe = self.redis.pipeline(transaction=False)
            for channel in channels:
                if event.replayable:
                    self._publish_script(
                        keys=self._keys(channel),
                        args=[head, tail, event.type, event.ts, self.history_max_events,
                              self.history_max_seconds * 1000, self.meta_ttl_ms, new_epoch(),
                              self._pubsub_name(channel), "PUBLISH"],
                        client=pipe)
                else:
                    pipe.publish(self._pubsub_name(channel),
                                 self.wire(event.type, None, event.ts, head, tail))
            ids = pipe.execute()
        except _ERRORS as exc:
            self.stats["publish_failed"] += 1
            if event.replayable:
                self._lost.update(channels)
            raise BrokerUnavailable(f"publish to Redis failed: {exc}") from exc
        self.stats["published"] += 1
        return [i.decode() if isinstance(i, bytes) and event.replayable else None for i in ids]

    def _repair_lost(self):
        """Start a new epoch on channels whose publish may have been lost, so clients resync."""
        while self._lost:
            channel = self._lost.pop()
            try:
                self._reset_script(keys=self._keys(channel),
                                   args=[new_epoch(), self._pubsub_name(channel), "PUBLISH", CHECK])
            except _ERRORS:
                self._lost.add(channel)
                raise
            log.warning("channel %s: a publish was lost while Redis was away; "
                        "its history restarts and its clients resync", channel)

    def _read(self, channel, after, client=None):
        position = ["", 0] if after is None else [after.epoch, after.seq]
        return self._read_script(
            keys=self._keys(channel),
            args=position + [self.history_max_seconds * 1000, self.meta_ttl_ms, new_epoch()],
            client=client)

    def read(self, channel, after=None):
        """Return the head of *channel* and, after *after*, the events Redis still holds."""
        try:
            reply = self._read(channel, after)
        except _ERRORS as exc:
            raise BrokerUnavailable(f"reading history from Redis failed: {exc}") from exc
        head = Position(reply[0].decode(), int(reply[1]))
        if after is None:
            return Replay(head, [])
        if reply[2] == b"resync":
            return Replay(head, None)
        return Replay(head, [unpack(raw) for raw in reply[3:]])

    # -- live delivery ----------------------------------------------------------------------

    def _listen(self, channel):
        name = self._pubsub_name(channel)
        self._names[name] = channel
        try:
            self.listener.subscribe(name)
        except (ConnectionError, OSError) as exc:
            self._names.pop(name, None)
            raise BrokerUnavailable(f"subscribing in Redis failed: {exc}") from exc

    def _unlisten(self, channel):
        name = self._pubsub_name(channel)
        self._names.pop(name, None)
        self.listener.unsubscribe(name)

    def subscribe(self, inbox):
        """Subscribe *inbox*; wait for Redis to confirm even when another stream asked first."""
        super().subscribe(inbox)
        try:
            self.listener.wait_subscribed(self._pubsub_name(inbox.channel))
        except ConnectionError as exc:
            self.unsubscribe(inbox)
            raise BrokerUnavailable(str(exc)) from exc

    def _wanted(self):
        return [self._control, *self._names]

    def _on_message(self, name, raw):
        if name == self._control:
            self._on_control(raw)
            return
        channel = self._names.get(name)
        if channel is not None:
            self.hub.dispatch(channel, unpack(raw))

    def _on_control(self, raw):
        command, _, argument = raw.partition(b" ")
        if command == b"revoke":
            self.hub.revoke(argument.decode())

    def _on_reconnect(self):
        """After a (re)connect, tell every local stream its channel's head to find gaps."""
        channels = list(self.hub.channels)
        if self.stats["reconnects"] or channels:
            log.info("Redis pub/sub connected; checking %d channels for missed events",
                     len(channels))
        self.stats["reconnects"] += 1
        self._repair_lost()
        pipe = self.redis.pipeline(transaction=False)
        for channel in channels:
            self._read(channel, None, client=pipe)
        for channel, reply in zip(channels, pipe.execute()):
            self.mark_checkpoint(channel, Position(reply[0].decode(), int(reply[1])))

    # -- login sessions and stream slots ------------------------------------------------------

    def revoke(self, sid):
        """Close the streams of *sid* here at once, and in every other process via Redis."""
        self.hub.revoke(sid)
        try:
            self.redis.publish(self._control, b"revoke " + sid.encode())
        except _ERRORS as exc:
            raise BrokerUnavailable(f"telling other workers of a logout failed: {exc}") from exc

    def _slot_key(self, user_id):
        return f"{self.prefix}:slots:{{{user_id}}}"

    def acquire_slot(self, user_id, stream_id, limit):
        """Count the stream in a sorted set every process shares; entries expire unrefreshed."""
        try:
            ok = self._acquire_script(keys=[self._slot_key(user_id)],
                                      args=[stream_id, limit, int(time.time() * 1000),
                                            self.slot_ttl_ms])
        except _ERRORS as exc:
            raise BrokerUnavailable(f"counting streams in Redis failed: {exc}") from exc
        if ok:
            self._slots[stream_id] = user_id
        return bool(ok)

    def release_slot(self, user_id, stream_id):
        """Remove the stream from the user's set."""
        self._slots.pop(stream_id, None)
        try:
            self.redis.zrem(self._slot_key(user_id), stream_id)
        except _ERRORS:
            log.warning("could not release a stream slot of user %s; it expires by itself", user_id)

    def _refresh_slots(self):
        """Keep this process's open streams counted; a dead worker's entries expire."""
        while True:
            gevent.sleep(self.slot_ttl_ms / 3000)
            if not self._slots:
                continue
            expires = int(time.time() * 1000) + self.slot_ttl_ms
            try:
                pipe = self.redis.pipeline(transaction=False)
                for stream_id, user_id in list(self._slots.items()):
                    pipe.zadd(self._slot_key(user_id), {stream_id: expires}, xx=True)
                    pipe.pexpire(self._slot_key(user_id), self.slot_ttl_ms)
                pipe.execute()
            except _ERRORS as exc:
                log.warning("refreshing stream slots failed (%s)", exc)

    # -- operations ---------------------------------------------------------------------------

    def ping(self):
        """Raise :class:`BrokerUnavailable` unless Redis answers and pub/sub is connected."""
        self.ensure_started()
        try:
            self.redis.ping()
        except _ERRORS as exc:
            raise BrokerUnavailable(f"Redis does not answer: {exc}") from exc
        if not self.listener.connected.is_set():
            raise BrokerUnavailable("the pub/sub connection to Redis is down")

    def start(self, wait_seconds=5.0):
        """Connect the listener and start the slot heartbeat.

        :raises RuntimeError: when sockets are not monkey-patched by gevent, since the
            listener would then block every request of the process.
        """
        from gevent import monkey

        if not monkey.is_module_patched("socket"):
            raise RuntimeError("The Redis broker needs gevent's monkey-patching: serve with "
                               "'gunicorn -c gunicorn.conf.py wsgi:app' (wsgi.py patches first).")
        self._started = True
        self.listener.start()
        if self._heartbeat is None:
            self._heartbeat = gevent.spawn(self._refresh_slots)
        if not self.listener.connected.wait(wait_seconds):
            log.error("Redis pub/sub is not connected yet; streams will answer 503 until it is")

    def close(self):
        """Close local streams, stop listening and drop connections."""
        super().close()
        self.listener.stop()
        if self._heartbeat is not None:
            self._heartbeat.kill(block=False)
        self.redis.close()

"""The Redis broker: atomic publish-and-append per channel, one pub/sub connection per process
(per shard on a Redis Cluster)."""
import logging
import os

import gevent
import redis
from redis.connection import parse_url

from app import metrics, redis_client
from app.broker.base import Broker, BrokerUnavailable, Replay
from app.broker.listener import Listener, PubSubConnection
from app.broker.scripts import SOURCES
from app.broker.shards import ShardedListener
from app.events.wire import Position, new_epoch, unpack

log = logging.getLogger(__name__)

_ERRORS = redis_client.ERRORS

# How often a worker renews the metadata of the channels its streams listen to. Only reads
# renew it otherwise (a publish does not, see app.broker.scripts), and a stream may stay open
# for longer than the metadata lives. Far below that lifetime (the history window + 7 days).
KEEP_WARM_SECONDS = 3600
# Channels whose heads one pipeline reads (after a reconnect, and every KEEP_WARM_SECONDS):
# a round trip per thousand, not one long wait on Redis for every channel of the worker.
_CHECKPOINT_BATCH = 1000

# Channels per publish script (one Redis without cluster): the event's bytes go once per batch,
# and Redis runs one script for a few hundred followers' feeds, not one each.
_PUBLISH_BATCH = 500

# What the reset script publishes in place of an event type: a channel's history restarted.
# The listener turns it into a checkpoint; it never reaches a stream as a message.
CHECKPOINT_MARK = "__check"
_CHECKPOINT_PREFIX = CHECKPOINT_MARK.encode() + b" "


class RedisBroker(Broker):
    """Keeps history in Redis Streams and delivers live events over pub/sub.

    A publish runs one script per batch of channels (per channel on a cluster) that, for
    each warm channel, bumps its sequence number, appends the event to its history and
    publishes it, so the id a client sees live is the id it resumes from. A worker that may have missed live messages (its pub/sub connection
    dropped) reads every subscribed channel's head and lets each stream fill its gap from
    history, or resync.

    :param url: the ``redis://`` URL of a Redis, or of any node of a Redis Cluster.
    :param client: the app's client of that Redis (:mod:`app.redis_client`); None connects.
    :param prefix: the namespace of every key and channel (several apps can share a Redis).
    :param cluster: True for a Redis Cluster (sharded pub/sub); None asks the server.
    """

    def __init__(self, url, client=None, prefix="rt", health_seconds=5.0, cluster=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.prefix = prefix
        self.redis = client if client is not None else redis_client.connect(url, cluster)
        self.cluster = redis_client.clustered(self.redis)
        self.publish_command = "SPUBLISH" if self.cluster else "PUBLISH"
        self.scripts = redis_client.Scripts(self.redis, SOURCES)
        self._names = {}  # pub/sub name -> channel
        self._lost = set()  # channels whose publish may not have happened
        self._started = False
        self._warmer = None
        self.meta_ttl_ms = (self.history_max_seconds + 7 * 86400) * 1000
        self.listener = self._listener(url, health_seconds)

    def _listener(self, url, health_seconds):
        params = parse_url(url)
        name = f"{self.prefix}-pubsub-{os.getpid()}"
        if self.cluster:
            return ShardedListener(self.redis, self._on_message, self._on_reconnect,
                                   params.get("password"), params.get("username"),
                                   health_seconds=health_seconds, name=name,
                                   on_moved=self._on_moved)
        connection = PubSubConnection(params.get("host", "127.0.0.1"), params.get("port", 6379),
                                      params.get("password"), params.get("username"), name=name)
        return Listener(connection, self._on_message, self._on_reconnect,
                        wanted=lambda: list(self._names), health_seconds=health_seconds)

    # -- names ----------------------------------------------------------------------------

    def _keys(self, channel):
        # One hash tag per channel: its keys and its pub/sub name live on one cluster slot.
        tag = f"{self.prefix}:{{{channel}}}"
        return [f"{tag}:m", f"{tag}:h"]

    def _once_key(self, channel):
        # The once-ids a channel has had (publish's *once*), beside its other keys.
        return f"{self.prefix}:{{{channel}}}:o"

    def _author_keys(self, channel, *authors):
        # The channel's index of authors, then each author's indexed events, on its slot.
        tag = f"{self.prefix}:{{{channel}}}"
        return [f"{tag}:i", *(f"{tag}:a:{author}" for author in authors)]

    def _pubsub_name(self, channel):
        return f"{self.prefix}:{{{channel}}}".encode()

    # -- publishing and history -------------------------------------------------------------

    def publish(self, channels, event, mark=None, once=None):
        """Publish *event* to *channels* in one pipelined round trip; return their ids.

        A cold channel (see :mod:`app.broker.scripts`) gets nothing, and None for its id.
        """
        if once is not None and len(channels) != 1:
            raise ValueError("a once-id publishes to one channel")
        head, tail = event.encode()
        # One script per channel on a cluster (each on its own slot), and for an event
        # indexed by its author (the author's keys are the channel's), else per batch.
        batched = event.replayable and not self.cluster and not event.author
        size = _PUBLISH_BATCH if batched else 1
        batches = [channels[i:i + size] for i in range(0, len(channels), size)]
        try:
            self._repair_lost()
            pipe = self.redis.pipeline(transaction=False)
            for batch in batches:
                if event.replayable:
                    keys = [key for channel in batch for key in self._keys(channel)]
                    if once is not None:
                        keys.append(self._once_key(batch[0]))
                    if event.author:
                        index, stream = self._author_keys(batch[0], event.author)
                        keys += [stream, index]
                    self.scripts.run(pipe, "publish", keys, [
                        head, tail, event.wire_type, event.ts, self.history_max_events,
                        self.history_max_seconds * 1000, self.publish_command, mark or "",
                        once or "", self.once_ms, event.author or ""])
                else:
                    [channel] = batch
                    self.scripts.run(pipe, "publish_ephemeral", [self._pubsub_name(channel)], [
                        self.wire(event.type, None, event.ts, head, tail), self.publish_command])
            results = self.scripts.execute(pipe, raise_on_error=False)
        except _ERRORS as exc:
            results = [exc] * len(batches)
        failed = [c for batch, r in zip(batches, results) if isinstance(r, Exception)
                  for c in batch]
        if failed:
            self.stats["publish_failed"] += 1
            if event.replayable:
                self._lost.update(failed)  # on a cluster, only the shard that failed
            error = next(r for r in results if isinstance(r, Exception))
            if len(failed) == len(channels):
                raise BrokerUnavailable(f"publish to Redis failed: {error}") from error
            log.error("event %s not published to %d of %d channels: %s", event.type,
                      len(failed), len(channels), error)
        self.stats["published"] += 1
        ids = []
        for batch, reply in zip(batches, results):
            if isinstance(reply, list):  # a replayable event's ids; None where cold
                ids.extend(None if i is None else i.decode() for i in reply)
            else:  # failed, or ephemeral
                ids.extend([None] * len(batch))
        return ids

    def _reset(self, channel):
        """Start a new epoch of *channel*: its history is gone, and its streams will resync."""
        self.scripts.run(self.redis, "reset", self._keys(channel),
                         [new_epoch(), self._pubsub_name(channel), self.publish_command,
                          CHECKPOINT_MARK])

    def restart(self, channel):
        """Start *channel* over now, or once Redis is back (as a channel whose publish failed)."""
        self._lost.add(channel)
        try:
            self._repair_lost()
        except _ERRORS as exc:
            log.warning("channel %s starts over once Redis is back: %s", channel, exc)

    def _repair_lost(self):
        """Start a new epoch on channels whose publish may have been lost, so clients resync."""
        while self._lost:
            channel = self._lost.pop()
            try:
                self._reset(channel)
            except _ERRORS:
                self._lost.add(channel)
                raise
            # Info, not warning: the caller says why, once (a publish failed, or the outbox
            # relay took over a stopped worker's event), and there may be thousands.
            log.info("channel %s starts over: its history restarts and its clients resync",
                     channel)

    def _read(self, channel, after, client):
        position = ["", 0] if after is None else [after.epoch, after.seq]
        return self.scripts.run(client, "read", self._keys(channel), position + [
            self.history_max_seconds * 1000, self.meta_ttl_ms, new_epoch()])

    def read(self, channel, after=None):
        """Return the head of *channel* and, after *after*, the events Redis still holds."""
        try:
            reply = self._read(channel, after, self.redis)
        except _ERRORS as exc:
            raise BrokerUnavailable(f"reading history from Redis failed: {exc}") from exc
        head = Position(reply[0].decode(), int(reply[1]))
        known = isinstance(reply[2], list)
        marks = frozenset(name.decode() for name in reply[2]) if known else None
        version = 0 if known else reply[2]
        if after is None:
            return Replay(head, [], marks, version)
        if reply[3] == b"resync":
            return Replay(head, None, marks, version)
        return Replay(head, [unpack(raw) for raw in reply[4:]], marks, version)

    def read_authors(self, channel, after):
        """Return the head of *channel* and the events of the authors in *after* that Redis
        still holds after each one's position, from the channel's author index."""
        if not after:
            return Replay(self.read(channel).head, [])
        authors = list(after)
        epochs = {position.epoch for position in after.values()}
        positions = [value for author in authors for value in (author, after[author].seq)]
        keys = self._keys(channel)[:1] + self._author_keys(channel, *authors)
        try:
            reply = self.scripts.run(self.redis, "read_authors", keys, [
                epochs.pop() if len(epochs) == 1 else "", self.history_max_seconds * 1000,
                self.meta_ttl_ms, new_epoch(), self.history_max_events, *positions])
        except _ERRORS as exc:
            raise BrokerUnavailable(f"reading history from Redis failed: {exc}") from exc
        head = Position(reply[0].decode(), int(reply[1]))
        if reply[3] == b"resync":
            return Replay(head, None)
        return Replay(head, [unpack(raw) for raw in reply[4:]])

    def remember(self, channel, version, names):
        """Make *names* the marks of *channel*, unless a mark was published since *version*."""
        try:
            self.scripts.run(self.redis, "remember", self._keys(channel)[:1], [version, *names])
        except _ERRORS as exc:
            raise BrokerUnavailable(f"storing a channel's marks in Redis failed: {exc}") from exc

    # -- live delivery ----------------------------------------------------------------------

    def _listen(self, channel):
        self._ensure_started()
        name = self._pubsub_name(channel)
        self._names[name] = channel
        try:
            self.listener.subscribe(name)
        except (ConnectionError, OSError, redis.RedisError) as exc:
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

    def confirm(self, subscriber):
        """Wait for a pending subscription of *subscriber*'s channel; never unsubscribe it."""
        try:
            self.listener.wait_subscribed(self._pubsub_name(subscriber.channel))
        except ConnectionError as exc:
            raise BrokerUnavailable(str(exc)) from exc

    def _on_message(self, name, raw):
        channel = self._names.get(name)
        if channel is None:
            return
        self._arrived(channel)
        if raw.startswith(_CHECKPOINT_PREFIX):
            self.hub.checkpoint(channel, unpack(raw).position)
        else:
            self.hub.dispatch(channel, unpack(raw))

    def _on_reconnect(self, names):
        """After a (re)connect, tell the streams of those channels their heads to find gaps."""
        channels = [self._names[n] for n in names if self._names.get(n)]
        if self.stats["reconnects"]:
            log.info("Redis pub/sub reconnected; checking %d channels for missed events",
                     len(channels))
            metrics.REDIS_RECONNECTS.inc()
        self.stats["reconnects"] += 1
        self._repair_lost()
        self._checkpoint(channels)

    def _checkpoint(self, channels):
        for start in range(0, len(channels), _CHECKPOINT_BATCH):
            batch = channels[start:start + _CHECKPOINT_BATCH]
            pipe = self.redis.pipeline(transaction=False)
            for channel in batch:
                self._read(channel, None, pipe)
            for channel, reply in zip(batch, self.scripts.execute(pipe)):
                self._arrived(channel)
                self.hub.checkpoint(channel, Position(reply[0].decode(), int(reply[1])))

    def keep_warm(self):
        """Renew the metadata of every channel this process listens to, and check its head.

        A read renews it, and recreates it (a new epoch) if Redis lost it; the head goes to
        the channel's streams as after a reconnect, so one that missed something fills the
        gap or resyncs instead of listening to a channel gone cold.
        """
        self._checkpoint(list(self._names.values()))

    def _keep_warm_forever(self):
        while True:
            gevent.sleep(KEEP_WARM_SECONDS)
            try:
                self.keep_warm()
            except _ERRORS as exc:
                # The reconnect that follows an outage checks every channel anyway.
                log.warning("renewing the channels of this worker's streams failed: %s", exc)

    def _on_moved(self, names, old, new):
        """Channels moved to another shard (a failover): fence its history, then check them.

        A replica promoted by a failover may lack the last events its primary acknowledged
        and clients saw; the next publish would then reuse their sequence numbers. One worker
        starts a new epoch on every channel of the promoted shard, so that every client of
        those channels resyncs instead of silently skipping an event.
        """
        lock = f"{self.prefix}:fence:{old[0]}:{old[1]}:{new[0]}:{new[1]}"
        try:
            if self.redis.set(lock, os.getpid(), nx=True, ex=300):
                self._fence(new)
            self._checkpoint([self._names[n] for n in names if self._names.get(n)])
        except _ERRORS as exc:
            log.error("fencing channels after a failover to %s:%s failed: %s", *new, exc)

    def _fence(self, address):
        node = redis.Redis(host=address[0], port=address[1], socket_timeout=5.0)
        pattern = f"{self.prefix}:{{*}}:m"
        count = 0
        with node:
            for key in node.scan_iter(match=pattern, count=1000):
                self._reset(key.decode()[len(self.prefix) + 2:-3])
                count += 1
        log.warning("failover to %s:%s: restarted the history of %d channels", *address, count)

    # -- operations ---------------------------------------------------------------------------

    def ping(self):
        """Raise :class:`BrokerUnavailable` unless Redis answers and pub/sub is connected."""
        self._ensure_started()
        try:
            self.redis.ping()
        except _ERRORS as exc:
            raise BrokerUnavailable(f"Redis does not answer: {exc}") from exc
        if not self.listener.healthy():
            raise BrokerUnavailable("the pub/sub connection to Redis is down")

    def _ensure_started(self, wait_seconds=5.0):
        """Connect pub/sub on first use (so CLI commands that never stream do not).

        :raises RuntimeError: when sockets are not monkey-patched by gevent, since the
            listener would then block every request of the process.
        """
        if self._started:
            return
        from gevent import monkey

        if not monkey.is_module_patched("socket"):
            raise RuntimeError("The Redis broker needs gevent's monkey-patching: serve with "
                               "'gunicorn -c gunicorn.conf.py wsgi:app' (wsgi.py patches first).")
        self._started = True
        self._warmer = gevent.spawn(self._keep_warm_forever)
        if not self.listener.wait_connected(wait_seconds):
            log.error("Redis pub/sub is not connected yet; streams answer 503 until it is")

    def close(self):
        """Close local streams, stop listening and drop connections."""
        super().close()
        if self._warmer is not None:
            self._warmer.kill(block=False)
        self.listener.stop()
        self.redis.close()

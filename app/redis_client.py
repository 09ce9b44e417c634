"""The app's one Redis client, shared by the broker, the stream quota and the auth stores.

``app.extensions["redis"]`` is a ``redis.Redis`` (or ``RedisCluster``) when ``REDIS_URL`` is
set, and None otherwise: in-process, each user of it keeps its state in memory or the database.
"""
import logging

import gevent
import redis
from flask import current_app
from gevent.event import AsyncResult
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError
from redis.retry import Retry

log = logging.getLogger(__name__)

ERRORS = (redis.RedisError, OSError)


def is_cluster(url):
    """Return whether *url* names a Redis Cluster node (False when it cannot be asked)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        with client:
            return client.info("cluster").get("cluster_enabled") == 1
    except ERRORS as exc:
        log.warning("could not ask %s whether it is a cluster (%s); assuming it is not", url, exc)
        return False


def connect(url, cluster=None):
    """Return a client of the Redis (or Redis Cluster, when *cluster*; None asks) at *url*."""
    if cluster is None:
        cluster = is_cluster(url)
    # One quick retry after a dropped connection, none after a timeout (a script may have
    # run: a retry would publish twice), then fail: a request must not hang on a Redis that
    # is away, and redis-py's default retries take seconds.
    options = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0,
               "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), 1,
                              supported_errors=(redis.ConnectionError,))}
    if cluster:
        return RedisCluster.from_url(url, **options)
    # A burst of stream opens on one worker must queue for a connection, not open hundreds
    # of them at once (each connect then times out under the CPU load).
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=5, **options)
    return redis.Redis(connection_pool=pool)


def clustered(client):
    """Return whether *client* talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


class Scripts:
    """Run Lua scripts by name: EVALSHA on one Redis, EVAL on a cluster.

    A Redis Cluster pipeline refuses EVALSHA, and a replica promoted by a failover does not
    have the scripts its primary had loaded; sending the source always works.

    In a pipeline on one Redis, a script goes as a bare EVALSHA: redis-py's own way asks
    ``SCRIPT EXISTS`` before every pipeline that holds a script, one more round trip each time
    (a long-poll's stream slot paid it on every poll). Run such pipelines with
    :meth:`execute`, which loads the scripts and runs again what Redis answered NOSCRIPT.

    :param sources: script name -> Lua source.
    """

    def __init__(self, client, sources):
        self.client = client
        self.cluster = clustered(client)
        self.sources = sources
        self._loaded = {} if self.cluster else {name: client.register_script(source)
                                                for name, source in sources.items()}

    def run(self, client, name, keys, args):
        """Run script *name* on *client* (a client, or a pipeline run with :meth:`execute`)."""
        if self.cluster:
            # execute_command: a cluster pipeline's eval() does not take a script.
            return client.execute_command("EVAL", self.sources[name], len(keys), *keys, *args)
        script = self._loaded[name]
        if isinstance(client, Pipeline):
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return script(keys=keys, args=args, client=client)

    def execute(self, pipe, raise_on_error=True):
        """Execute *pipe* and return its results, as ``pipe.execute`` does.

        Redis forgets its scripts when it restarts (or a replica takes over): the commands
        it answered NOSCRIPT did not run, so those alone run again once the scripts are
        loaded, and nothing runs twice.
        """
        if self.cluster:
            return pipe.execute(raise_on_error=raise_on_error)
        stack = list(pipe.command_stack)
        results = pipe.execute(raise_on_error=False)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            self.load()
            again = self.client.pipeline(transaction=False)
            for i in missing:
                args, options = stack[i]
                again.execute_command(*args, **options)
            for i, result in zip(missing, again.execute(raise_on_error=False)):
                results[i] = result
        if raise_on_error:
            error = next((r for r in results if isinstance(r, Exception)), None)
            if error is not None:
                raise error
        return results

    def load(self):
        """Load every script into Redis (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        for script in self._loaded.values():
            pipe.script_load(script.script)
        pipe.execute()


class ExistsBatch:
    """``EXISTS`` of one key at a time, in batches: the checks asked while a round trip is on
    its way all go together in the next one, pipelined.

    A busy channel's long-pollers all poll again at once after each event, and each asks
    whether its login session was revoked: one round trip each was an eighth of a poll's CPU.
    A check asked when none is on its way goes at once, so batching adds no wait to it.

    :param client: a Redis (or Redis Cluster) client.
    """

    def __init__(self, client):
        self.client = client
        self._waiting = {}  # key -> AsyncResult, for the next round trip
        self._sending = False

    def exists(self, key):
        """Return whether *key* exists.

        :raises redis.RedisError, OSError: when Redis cannot be asked.
        """
        result = self._waiting.get(key)
        if result is None:
            result = self._waiting[key] = AsyncResult()
        if not self._sending:
            self._send()
        return result.get()

    def _send(self):
        """Send what waits, in one round trip; then let a new greenlet send what came since."""
        batch, self._waiting = self._waiting, {}
        self._sending = True
        replies = error = None
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                pipe.exists(key)
            replies = pipe.execute()
        except Exception as exc:  # noqa: BLE001 - every waiter gets the error its own call would
            error = exc
        finally:
            if replies is None and error is None:
                # This greenlet was killed on the way: the others must not wait forever.
                error = redis.ConnectionError("the batched EXISTS was interrupted")
            for i, result in enumerate(batch.values()):
                if error is None:
                    result.set(bool(replies[i]))
                else:
                    result.set_exception(error)
            self._sending = False
            if self._waiting:
                # Not here: this greenlet's own answer is ready, and its request goes on.
                self._sending = True
                gevent.spawn(self._send_next)

    def _send_next(self):
        self._sending = False
        if self._waiting:
            self._send()


def init_app(app):
    """Store the app's Redis client in ``app.extensions["redis"]`` (None without Redis).

    Reads ``REDIS_URL`` and ``REDIS_CLUSTER`` (None: ask the server); sets ``REDIS_CLUSTER``
    to the answer, and ``REDIS_PREFIX`` (default ``rt``), the namespace of every key.
    """
    if "redis" in app.extensions:
        raise RuntimeError("A Redis client is already registered on this app; "
                           "use app.extensions['redis'].")
    app.config.setdefault("REDIS_PREFIX", "rt")
    url = app.config.get("REDIS_URL")
    client = None
    if url:
        cluster = app.config.get("REDIS_CLUSTER")
        client = connect(url, is_cluster(url) if cluster is None else cluster)
        app.config["REDIS_CLUSTER"] = clustered(client)
    app.extensions["redis"] = client


def current_redis():
    """Return the current app's Redis client, or None when the app runs without Redis."""
    return current_app.extensions["redis"]

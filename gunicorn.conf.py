"""gunicorn settings for long-lived streams: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Honours HOST (127.0.0.1), PORT (8000), WEB_CONCURRENCY (1 worker) and
GUNICORN_WORKER_CONNECTIONS (10000 streams per worker). The app is not preloaded: each worker
imports it after gevent has patched the standard library in that worker.
"""
import os
import re
import shutil
import tempfile

from gunicorn.glogging import Logger

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gevent"
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "10000"))
# With gevent, timeout is the worker heartbeat, not a request deadline: streams last hours.
timeout = 30
# On SIGTERM/SIGHUP, streams get this long to end cleanly before the worker is killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "10"))
# Idle keep-alive connections hold a stopping worker until they time out: keep them short.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
preload_app = False
accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
proc_name = "feed"

_SECRETS = re.compile(r"((?:^|[?&])(?:token|ticket)=)[^&\s]*")


class RedactingLogger(Logger):
    """The access log without tokens: ``?token=`` and ``?ticket=`` values become ``***``."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "U"):
            if key in atoms and atoms[key]:
                atoms[key] = _SECRETS.sub(r"\1***", atoms[key])
        if atoms.get("{raw_uri}e"):
            atoms["{raw_uri}e"] = _SECRETS.sub(r"\1***", atoms["{raw_uri}e"])
        return atoms


logger_class = RedactingLogger


def on_starting(server):
    """Refuse several workers without Redis, and prepare the shared metrics directory."""
    if server.cfg.workers > 1 and not os.environ.get("REDIS_URL"):
        raise SystemExit(
            f"refusing to start {server.cfg.workers} workers without REDIS_URL: the in-process "
            "broker cannot carry events between workers, so clients of one worker would miss "
            "events published by another. Set REDIS_URL, or run one worker (WEB_CONCURRENCY=1).")
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="feed-metrics-")
        server._metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def post_worker_init(worker):
    """Freeze what the worker loaded out of garbage collection, connect its broker now, and
    end its streams as soon as it is told to stop."""
    import logging

    import gevent

    from app.broker import BrokerUnavailable

    frozen = freeze_startup_objects()  # before the broker's connections, which a reconnect replaces
    # The app's own info lines (streams opening and closing, Redis reconnects) go where
    # gunicorn's go, at its LOG_LEVEL; unconfigured, Python would drop them below WARNING.
    app_log = logging.getLogger("app")
    app_log.handlers = worker.log.error_log.handlers
    app_log.setLevel(worker.log.error_log.level)
    app_log.propagate = False
    broker = worker.wsgi.extensions["broker"]
    # Parked SSE streams hold no pool slot: bound them by the same number.
    worker.wsgi.extensions["parked_streams"].limit = worker.worker_connections
    try:
        broker.ping()  # the Redis broker connects pub/sub on first use: this is it
    except BrokerUnavailable as exc:
        worker.log.warning("worker %s: the broker is not reachable yet (%s)", worker.pid, exc)

    def end_streams_on_shutdown():
        # gunicorn clears worker.alive on SIGTERM, SIGQUIT or a SIGHUP reload, then waits up
        # to graceful_timeout for requests to finish: streams would otherwise hold it open.
        while worker.alive:
            gevent.sleep(0.25)
        worker.log.info("worker %s stopping: ending %d streams", worker.pid, broker.hub.count())
        # Keep ending them until the worker exits: a kept-alive connection can still bring a
        # request (a long-poll's next one, mostly) after the first sweep, and a stream left
        # open would hold the worker until graceful_timeout, then die without giving back its
        # per-user slot.
        while True:
            broker.hub.close_all()
            gevent.sleep(0.1)

    gevent.spawn(end_streams_on_shutdown)
    # Events that a stopped worker committed and did not publish: see app/services/outbox.py.
    worker.wsgi.extensions["outbox"].start()
    worker.log.info("worker %s: %d objects of its start frozen out of garbage collection",
                    worker.pid, frozen)


def freeze_startup_objects():
    """Keep what the worker has loaded (modules, the app, SQLAlchemy's mappers: about 150,000
    objects, living as long as the worker) out of the cyclic garbage collector's walks; return
    how many objects that is.

    A full collection stops every stream and request of the worker while it walks every
    object: with 500 streams open it took 75–150 ms, most of it on these. What the worker
    allocates later is still collected as before.
    """
    import gc

    gc.collect()  # what the start left as garbage is freed, not frozen
    gc.freeze()
    return gc.get_freeze_count()


def worker_exit(server, worker):
    """End the worker's parked streams, then close its stream count and broker as it exits:
    streams still counted go now, and conflated counts still pending are sent first.

    gunicorn waits for the requests it runs, and a parked stream is none (it has no greenlet
    while it waits): each gets up to 2 s here for its last ``ping`` and chunk.
    """
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    if extensions.get("parked_streams") is not None:
        extensions["parked_streams"].drain(2.0)
    for name in ("outbox", "feed_counts", "stream_quota", "broker"):
        if extensions.get(name) is not None:
            extensions[name].close()


def child_exit(server, worker):
    """Drop the live metrics (open connections) of a worker that exited."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory this master created."""
    metrics_dir = getattr(server, "_metrics_dir", None)
    if metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)

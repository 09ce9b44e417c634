"""The peer's gunicorn settings: the same as ours (gevent workers, one per WEB_CONCURRENCY)."""
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8001')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "10000"))
timeout = 30
graceful_timeout = 10
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
preload_app = False
accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = "-"
loglevel = "info"
proc_name = "flask-sse-peer"

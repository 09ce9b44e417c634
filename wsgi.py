"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gevent must patch the standard library before anything imports socket, ssl or threading;
otherwise Redis and PostgreSQL calls would block the whole worker. The ``flask`` CLI
(migrations) sets FLASK_RUN_FROM_CLI and needs no patching.
"""
import os

if not os.environ.get("FLASK_RUN_FROM_CLI"):
    from gevent import monkey

    monkey.patch_all()

from app import create_app  # noqa: E402

app = create_app()

"""Start real gunicorn servers (gevent workers) on free loopback ports, as production does."""
import atexit
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from tests.support.sessions import SERVER_KEEPALIVE

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port():
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def migrate(database_url):
    """Apply the migrations to *database_url* the way the README says.

    A SQLite file is a copy of one migrated so once per session: ``flask db upgrade`` costs a
    few seconds of CPU (the app and Alembic imported), and dozens of servers need a database.
    """
    if database_url.startswith("sqlite:///"):
        _copy_sqlite(_sqlite_template(), database_url.removeprefix("sqlite:///"))
    else:
        _upgrade(database_url)


def _upgrade(database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "development"}
    env.pop("REDIS_URL", None)
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)


_template = {}


def _sqlite_template():
    """Return the path of this session's migrated SQLite file (made on first use)."""
    if "sqlite" not in _template:
        directory = tempfile.mkdtemp(prefix="feed-template-")
        atexit.register(shutil.rmtree, directory, True)
        path = Path(directory) / "feed.db"
        _upgrade(f"sqlite:///{path}")
        _template["sqlite"] = path
    return _template["sqlite"]


def _copy_sqlite(source, target):
    # SQLite's backup API: a consistent copy whatever the journal mode left beside the file.
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


class Server:
    """One ``gunicorn -c gunicorn.conf.py wsgi:app`` process and its workers.

    :param env: extra environment (DATABASE_URL, REDIS_URL, REDIS_PREFIX…).
    :param workers: WEB_CONCURRENCY.
    :param log_dir: where its output goes (``server-<port>.log``).
    """

    def __init__(self, env, workers=1, log_dir=None, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PORT": str(self.port), "HOST": "127.0.0.1",
                    "WEB_CONCURRENCY": str(workers), "JWT_SECRET_KEY": "e2e-secret-" + "s" * 40,
                    "STREAM_PING_SECONDS": "1", "GUNICORN_KEEPALIVE": str(SERVER_KEEPALIVE),
                    "PASSWORD_HASH_TIME_COST": "1", "PASSWORD_HASH_MEMORY_KIB": "32",
                    "RATELIMIT_ENABLED": "false",
                    # Plain HTTP on loopback, like `make run`: a Secure cookie would not come
                    # back (requests) and "__Host-" names need it. Tests of Secure set "true".
                    "COOKIE_SECURE": "false", **env}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path = Path(log_dir or "/tmp") / f"server-{self.port}.log"
        self.process = None

    def start(self, timeout=30):
        """Start the server and wait until ``/healthz`` answers 200."""
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy in {timeout} s:\n{self.log()}")

    def worker_pids(self):
        """Return the pids of the master's worker processes."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                             text=True).stdout
        return [int(pid) for pid in out.split()]

    def signal(self, signum):
        """Send *signum* to the master."""
        self.process.send_signal(signum)

    def stop(self, timeout=15, graceful=True):
        """Stop gracefully (SIGTERM), or at once (SIGQUIT); then kill what is left."""
        self.begin_stop(graceful)
        self.wait_stopped(timeout)

    def begin_stop(self, graceful=True):
        """Send the stop signal without waiting (stop several servers side by side)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM if graceful else signal.SIGQUIT)

    def wait_stopped(self, timeout=15):
        """Wait for the server to exit after :meth:`begin_stop`; kill it past *timeout*."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log(self):
        """Return what the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Deployment:
    """Servers started for a test or a module, stopped together: the one deploy fixture's engine.

    :param tmp_path: where databases and server logs go.
    :param request: the pytest request (for the ``fresh_postgres_url`` fixture).
    """

    def __init__(self, tmp_path, request):
        self.tmp_path = tmp_path
        self.request = request
        self.servers = []

    def database(self, kind="sqlite"):
        """Return the URL of a fresh, migrated database (``sqlite`` or ``postgres``)."""
        if kind == "sqlite":
            url = f"sqlite:///{self.tmp_path / f'feed-{uuid.uuid4().hex[:6]}.db'}"
        else:
            url = self.request.getfixturevalue("fresh_postgres_url")
        migrate(url)
        return url

    def start(self, servers=1, workers=2, redis_url=None, database_url=None, prefix=None, **env):
        """Start *servers* sharing one database and Redis prefix; return them."""
        env = {k: str(v) for k, v in env.items()}
        env["DATABASE_URL"] = database_url or self.database()
        if redis_url:
            env["REDIS_URL"] = redis_url
            env["REDIS_PREFIX"] = prefix or f"x{uuid.uuid4().hex[:8]}"
        group = []
        for _ in range(servers):
            server = Server(env, workers=workers, log_dir=self.tmp_path)
            self.servers.append(server)
            group.append(server.start())
        return group

    def stop(self, graceful=True):
        """Stop every server started here, side by side (see :meth:`Server.stop`)."""
        stop_all(self.servers, graceful)


def stop_all(servers, graceful=True):
    """Stop *servers* side by side: each waits for gevent's loop to notice, all at once."""
    for server in servers:
        server.begin_stop(graceful)
    for server in servers:
        server.wait_stopped()

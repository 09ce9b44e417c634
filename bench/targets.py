"""The servers under test, started the production way, and what /proc says they cost."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stop_with_parent():
    """Have the kernel send SIGTERM to the server when the benchmark dies (Linux).

    A benchmark killed by a timeout must not leave servers (and their Redis keys) behind.
    """
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port():
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid):
    """Return the pids whose parent is *pid*."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


def cpu_seconds(pids):
    """Return the user + system CPU seconds *pids* have used so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def rss_kb(pids):
    """Return the resident memory of *pids* in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except OSError:
            continue
    return total


class Redis:
    """What the shared Redis costs: CPU seconds and memory, from INFO."""

    def __init__(self, url):
        import redis

        self.client = redis.Redis.from_url(url)

    def cpu_seconds(self):
        info = self.client.info("cpu")
        return info["used_cpu_sys"] + info["used_cpu_user"]

    def memory_kb(self):
        return self.client.info("memory")["used_memory"] / 1024

    def subscribers(self, channel):
        return self.client.pubsub_numsub(channel)[0][1]

    def drop_prefix(self, prefix):
        """Delete every key the benchmark made under *prefix*."""
        keys = list(self.client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            self.client.delete(*keys[i:i + 500])


class PrivateRedis:
    """A throwaway redis-server on a free port, without persistence, for one measurement.

    *maxmemory* (``noeviction``) guards the machine: a fan-out that would store gigabytes
    fails in Redis with an OOM error, which the benchmark reports, instead of swapping.
    """

    def __init__(self, maxmemory="8gb"):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.maxmemory = maxmemory
        self.process = None

    def start(self, timeout=10):
        """Start it and wait until it answers PING."""
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxmemory", self.maxmemory,
             "--maxmemory-policy", "noeviction", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_stop_with_parent)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self):
        """Stop it at once; its data is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


class Target:
    """One server under test (gunicorn with gevent workers, or nginx).

    Subclasses give the command, the environment and the stream paths.
    """

    name = label = None
    transports = ("sse",)
    has_api = True  # users, follows and posts through the JSON API (else channels by name)
    feeds = True  # the feed fan-out scenario (it needs a follower graph)
    answers_at_once = True  # a stream's first bytes come as it opens (open_streams waits)
    published = (201,)  # the statuses of a publish that went through
    poller = "ours"  # the long-poll protocol: ours (cursor) or nchan (Last-Modified/Etag)

    def publish_request(self, post_id, content):
        """Return ``(method, path, JSON body)`` of a request that publishes *content* to a
        post's channel: a comment, for the servers with our API."""
        return "POST", f"/api/posts/{post_id}/comments", {"content": content}

    def __init__(self, redis_url, workers=2, workdir=None, extra_env=None):
        self.redis_url = redis_url
        self.workers = workers
        self.port = free_port()
        self.host = "127.0.0.1"
        self.prefix = f"bench{uuid.uuid4().hex[:8]}"
        # Logs stay under bench/results/tmp/ (ignored by git) for a look after the run.
        scratch = ROOT / "bench" / "results" / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"{self.name}-", dir=scratch))
        self.extra_env = extra_env or {}
        self.process = None
        self.log_path = self.workdir / f"{self.name}-{self.port}.log"

    def env(self):
        return {**os.environ, "HOST": self.host, "PORT": str(self.port),
                "WEB_CONCURRENCY": str(self.workers), "REDIS_URL": self.redis_url,
                "REDIS_PREFIX": self.prefix, **self.extra_env}

    def command(self):
        raise NotImplementedError

    def prepare(self):
        """Do what must happen before the first start (migrations)."""

    def start(self, timeout=60):
        """Start the server and wait until ``/healthz`` answers 200."""
        env = self.env()
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=self.cwd, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_stop_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            try:
                url = f"http://{self.host}:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200 and len(self.pids()) > self.workers:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy in {timeout} s")

    # The signal that stops the server at once, not gracefully: gunicorn's SIGQUIT.
    halt_signal = signal.SIGQUIT

    def halt(self):
        """Stop at once: its clients are gone and nothing after them is measured.

        A graceful stop would wait out Flask-SSE's streams of closed clients (it finds them
        out only at its next write): its 10 s graceful timeout each time.
        """
        self._end(self.halt_signal)

    def restart(self):
        """Stop at once and start again on the same port.

        The database and the registered users stay.
        """
        self.halt()
        self.start()

    def pids(self):
        """Return the master's pid and its workers'."""
        return [self.process.pid, *children(self.process.pid)]

    def stop(self):
        """Stop gracefully (SIGTERM), then kill what is left."""
        self._end(signal.SIGTERM)

    def _end(self, sig):
        """Send *sig* to a running server; kill its process group if it lingers past 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def cleanup(self):
        """Delete the database and access log; keep the server's log."""
        for path in self.workdir.iterdir():
            if path.name == "access.log" or not path.name.endswith(".log"):
                path.unlink(missing_ok=True)


class Ours(Target):
    """This project: ``gunicorn -c gunicorn.conf.py wsgi:app``, Redis broker, SQLite.

    Users are registered with cheap password hashing, and each opens many streams
    (``STREAMS_PER_USER`` raised).
    """

    name, label = "ours", "this project"
    transports = ("sse", "ws", "poll")
    cwd = ROOT

    def env(self):
        return {**super().env(), "DATABASE_URL": self.database_url(),
                "JWT_SECRET_KEY": "bench-secret-" + "b" * 40, "RATELIMIT_ENABLED": "false",
                "STREAMS_PER_USER": "100000", "GUNICORN_WORKER_CONNECTIONS": "19500",
                "PASSWORD_HASH_TIME_COST": "1", "PASSWORD_HASH_MEMORY_KIB": "32",
                "ACCESS_TOKEN_SECONDS": "7200", "ACCESS_LOG": str(self.workdir / "access.log"),
                **self.extra_env}

    def database_url(self):
        """Return ``BENCH_DATABASE_URL``, or a SQLite file on tmpfs (/dev/shm) when there is one.

        The benchmark measures fan-out; the database only serves the publishing requests.
        Python's sqlite3 is not cooperative: a commit's fsync on disk blocks the whole gevent
        worker, and would show up as publish-to-delivery latency of unrelated streams (a
        deployment with several workers uses PostgreSQL, whose driver yields).
        """
        url = os.environ.get("BENCH_DATABASE_URL")
        if url:
            return url
        folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else self.workdir
        return f"sqlite:///{folder / ('feed-bench-' + self.workdir.name + '.db')}"

    def cleanup(self):
        """Delete the database and access log; keep the server's log."""
        super().cleanup()
        path = Path(self.database_url().removeprefix("sqlite:///"))
        if self.database_url().startswith("sqlite:///") and path.suffix == ".db":
            path.unlink(missing_ok=True)

    def prepare(self):
        env = {**self.env(), "APP_ENV": "development"}
        env.pop("REDIS_URL", None)
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=120)

    def command(self):
        return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]

    def stream_path(self, transport, kind, key):
        base = {"sse": "/stream", "ws": "/ws", "poll": "/poll"}[transport]
        return f"{base}/post/{key}" if kind == "post" else f"{base}/feed"


class FlaskSSE(Target):
    """The peer: a minimal Flask-SSE app (bench/peers/flask_sse_app.py), same gunicorn settings."""

    name, label = "flask_sse", "Flask-SSE 1.0.0"
    cwd = ROOT / "bench" / "peers"
    answers_at_once = False  # nothing before the first event

    def env(self):
        return {**super().env(), "GUNICORN_WORKER_CONNECTIONS": "12000",
                "ACCESS_LOG": str(self.workdir / "access.log")}

    def command(self):
        return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "flask_sse_app:app"]

    def stream_path(self, transport, kind, key):
        # Flask-SSE has no authentication: the channel is named in the URL.
        return f"/stream?channel={self.prefix}:{kind}:{key}"


NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"


def nchan_version():
    """Return the installed libnginx-mod-nchan's version, or None when it is not installed."""
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-nchan"],
                          capture_output=True, text=True)
    if done.returncode != 0 or not Path(NCHAN_MODULE).exists():
        return None
    return done.stdout.split(":")[-1].split("+")[0]


class Nchan(Target):
    """The ceiling: nchan (C, inside nginx) with its Redis storage, bench/peers/nchan.conf.

    No users and no database: channels are named in the URL, and the load generator POSTs whole
    event objects (``ts`` stamped as it sends) to ``/pub/<channel>``, which nchan stores in Redis
    and sends as they are. SSE, WebSocket and long-poll subscribe at ``/sub/<channel>``.
    """

    name = "nchan"
    transports = ("sse", "ws", "poll")
    has_api = feeds = False
    published = (201, 202)  # 202: accepted, nobody subscribed at that moment
    poller = "nchan"
    cwd = ROOT

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.label = f"nchan {nchan_version()}"
        self.config = self.workdir / "nginx.conf"

    def prepare(self):
        if nchan_version() is None:
            raise RuntimeError("nchan is not installed: scripts/ensure-services.sh nchan "
                               "installs Debian's nginx and libnginx-mod-nchan")
        (self.workdir / "tmp").mkdir(exist_ok=True)
        template = (ROOT / "bench" / "peers" / "nchan.conf").read_text()
        # nchan takes redis://host:port; its keys go under the prefix (dropped after the run).
        self.config.write_text(template.format(
            module=NCHAN_MODULE, workers=self.workers, workdir=self.workdir, host=self.host,
            port=self.port, redis_url=self.redis_url.rsplit("/", 1)[0], prefix=self.prefix))

    def command(self):
        return ["nginx", "-c", str(self.config), "-p", str(self.workdir), "-g", "daemon off;"]

    halt_signal = signal.SIGTERM  # nginx's fast shutdown (its SIGQUIT is the graceful one)

    def cleanup(self):
        """Delete nginx's temporary folders and files; keep its logs."""
        shutil.rmtree(self.workdir / "tmp", ignore_errors=True)
        super().cleanup()

    def stream_path(self, transport, kind, key):
        return f"/sub/{self.prefix}-{kind}-{key}"

    def publish_request(self, post_id, content):
        event = {"type": "new_comment", "ts": int(time.time() * 1000), "post_id": post_id,
                 "comment": {"content": content}}
        return "POST", f"/pub/{self.prefix}-post-{post_id}", event

"""A private redis-server on a free port, for tests that stop, pause or restart Redis."""
import shutil
import subprocess
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.servers import free_port


class RedisServer:
    """A throwaway ``redis-server`` without persistence: a restart loses everything."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        """Start it and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def client(self):
        """Return a client of this server that does not retry (a stopped server stays down)."""
        return redis.Redis(port=self.port, retry=Retry(NoBackoff(), 0), socket_timeout=5)

    def stop(self):
        """Stop it at once, without saving (the data is gone)."""
        if self.process is None:
            return
        try:
            self.client().shutdown(nosave=True)
        except redis.RedisError:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self):
        """Stop and start again on the same port (history and epochs are lost)."""
        self.stop()
        return self.start()
